namespace Peft.Onnx.Core.Peft;

/// <summary>
/// PEFT's LoHaConfig (0.13.2 keys; newer keys are kept): each target's weight gets the Hadamard product
/// (hada_w1_a @ hada_w1_b) * (hada_w2_a @ hada_w2_b) * alpha / r added, with w*_a [out, r] and w*_b [r, in].
/// </summary>
public sealed record LoHaConfig : LycorisConfig
{
    public const string Type = "LOHA";

    public const string W1A = "hada_w1_a";
    public const string W1B = "hada_w1_b";
    public const string W2A = "hada_w2_a";
    public const string W2B = "hada_w2_b";

    public LoHaConfig() => PeftType = Type;

    protected override string MethodPeftType => Type;
    protected override string MethodName => "LoHa";

    /// <summary>hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b (saved without a ".weight" leaf).</summary>
    public override IReadOnlyList<ExpectedTensor> ExpectedTensors(TargetMatch target)
    {
        long r = target.Rank, inF = target.Linear.InFeatures, outF = target.Linear.OutFeatures;
        var why = $"r = {r} on '{target.Path}' (in {inF}, out {outF})";
        return
        [
            new(AdapterFormat.ModuleKey(target.Path, W1A), [outF, r], ExpectedTensor.BaseNeeds, $"LoHa w1_a, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, W1B), [r, inF], ExpectedTensor.BaseNeeds, $"LoHa w1_b, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, W2A), [outF, r], ExpectedTensor.BaseNeeds, $"LoHa w2_a, {why}"),
            new(AdapterFormat.ModuleKey(target.Path, W2B), [r, inF], ExpectedTensor.BaseNeeds, $"LoHa w2_b, {why}"),
        ];
    }
}
