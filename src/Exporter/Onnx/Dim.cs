namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// One dimension of a graph input or output: a fixed size or a symbolic name (dim_param). Converts
/// implicitly from integers and strings, so shapes read as <c>["batch_size", "sequence_length", 64]</c>.
/// </summary>
public readonly record struct Dim
{
    public long? Value { get; }
    public string? Param { get; }

    private Dim(long? value, string? param)
    {
        Value = value;
        Param = param;
    }

    public static Dim Fixed(long value) =>
        value >= 0 ? new(value, null) : throw new ArgumentOutOfRangeException(nameof(value), value, "a dimension is >= 0");

    public static Dim Symbolic(string name) =>
        !string.IsNullOrEmpty(name) ? new(null, name) : throw new ArgumentException("a symbolic dimension needs a name", nameof(name));

    public static implicit operator Dim(long value) => Fixed(value);
    public static implicit operator Dim(int value) => Fixed(value);
    public static implicit operator Dim(string name) => Symbolic(name);

    public override string ToString() => Param ?? Value!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The symbolic dimension names of the causal-LM interface (Optimum / ORT GenAI spelling).</summary>
public static class Dims
{
    public const string Batch = "batch_size";
    public const string Sequence = "sequence_length";
    public const string PastSequence = "past_sequence_length";
    public const string TotalSequence = "total_sequence_length";
    /// <summary>Positions logits are computed for: sequence_length, or num_logits_to_keep when that input is fed.</summary>
    public const string LogitsSequence = "logits_sequence_length";
}
