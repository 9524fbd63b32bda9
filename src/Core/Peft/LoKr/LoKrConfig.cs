namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's LoKrConfig (0.13.2 keys; newer keys are kept): each target's weight gets kron(w1, w2) * alpha / r added
/// (<see cref="LoKrFactors"/> gives the factor shapes). PEFT up to 0.13.2 left out the alpha / r scale and PEFT
/// 0.14 on applies it; the two agree when alpha equals r. This project follows current PEFT.
/// </summary>
public sealed record LoKrConfig : LycorisConfig
{
    public const string Type = "LOKR";

    public const string W1 = "lokr_w1";
    public const string W1A = "lokr_w1_a";
    public const string W1B = "lokr_w1_b";
    public const string W2 = "lokr_w2";
    public const string W2A = "lokr_w2_a";
    public const string W2B = "lokr_w2_b";

    public LoKrConfig() => PeftType = Type;

    /// <summary>Also decompose w1 into a rank-r product when r is small against its sides.</summary>
    public bool DecomposeBoth { get; init; }

    /// <summary>The largest factor of the Kronecker split (-1: the most balanced split).</summary>
    public int DecomposeFactor { get; init; } = -1;

    protected override string MethodPeftType => Type;
    protected override string MethodName => "LoKr";

    public LoKrFactors FactorsFor(TargetMatch target) =>
        LoKrFactors.For(checked((int)target.Linear.InFeatures), checked((int)target.Linear.OutFeatures), target.Rank, DecomposeBoth, DecomposeFactor);

    /// <summary>lokr_w1 or lokr_w1_a/b, then lokr_w2 or lokr_w2_a/b (saved without a ".weight" leaf).</summary>
    public override IReadOnlyList<ExpectedTensor> ExpectedTensors(TargetMatch target)
    {
        var f = FactorsFor(target);
        long r = f.Rank;
        var why = $"kron(w1 [{f.OutL}, {f.InM}], w2 [{f.OutK}, {f.InN}]) must be the weight's [{target.Linear.OutFeatures}, {target.Linear.InFeatures}] of '{target.Path}', r = {r}";
        var list = new List<ExpectedTensor>();
        string Key(string name) => AdapterFormat.ModuleKey(target.Path, name);
        if (f.UseW1) list.Add(new(Key(W1), f.W1Shape, ExpectedTensor.BaseNeeds, $"LoKr w1, {why}"));
        else
        {
            list.Add(new(Key(W1A), [f.OutL, r], ExpectedTensor.BaseNeeds, $"LoKr w1_a, {why}"));
            list.Add(new(Key(W1B), [r, f.InM], ExpectedTensor.BaseNeeds, $"LoKr w1_b, {why}"));
        }
        if (f.UseW2) list.Add(new(Key(W2), f.W2Shape, ExpectedTensor.BaseNeeds, $"LoKr w2, {why}"));
        else
        {
            list.Add(new(Key(W2A), [f.OutK, r], ExpectedTensor.BaseNeeds, $"LoKr w2_a, {why}"));
            list.Add(new(Key(W2B), [r, f.InN], ExpectedTensor.BaseNeeds, $"LoKr w2_b, {why}"));
        }
        return list;
    }
}
