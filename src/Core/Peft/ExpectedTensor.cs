namespace Peft.Onnx.Core.Peft;

/// <summary>
/// A tensor an adapter file holds for one base model: its saved name, the shape it must have, and where that shape
/// comes from (for messages: <paramref name="NeededBy"/> "the base model needs" or "adapter_config.json implies",
/// <paramref name="Detail"/> what it is for).
/// </summary>
public sealed record ExpectedTensor(string Key, long[] Shape, string NeededBy, string Detail)
{
    public const string BaseNeeds = "the base model needs";
    public const string ConfigImplies = "adapter_config.json implies";

    public static string Show(IReadOnlyList<long> shape) => $"[{string.Join(", ", shape)}]";
}
