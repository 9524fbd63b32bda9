using System.Globalization;
using Peft.Onnx.Core.Architectures;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// What PEFT 0.7.1's print_trainable_parameters reports for a base model with an adapter attached for training:
/// trainable parameters and all parameters (base, frozen, plus everything the adapter adds).
/// </summary>
public sealed record ParameterCount(long Trainable, long All)
{
    /// <summary>Counts from the configs alone (no weights are read or allocated).</summary>
    public static ParameterCount Count(Architecture arch, AdapterConfig adapter) => adapter.CountParameters(arch);

    /// <summary>
    /// 100 * trainable / all as Python computes it. Python divides the exact integers; converting both to double
    /// first gives the same correctly rounded result while 100 * trainable and all stay below 2^53.
    /// </summary>
    public double TrainablePercent => 100.0 * Trainable / All;

    /// <summary>PEFT's line: "trainable params: 300,288 || all params: 559,514,880 || trainable%: 0.05366935013417338".</summary>
    public string Line =>
        $"trainable params: {Trainable.ToString("N0", CultureInfo.InvariantCulture)} || all params: {All.ToString("N0", CultureInfo.InvariantCulture)} || trainable%: {PythonFloat.Repr(TrainablePercent)}";

    public override string ToString() => Line;
}
