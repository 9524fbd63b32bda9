namespace Peft.Onnx.Core.Onnx;

/// <summary>Names and neutral values of <see cref="AdapterStackKind"/> tensors, shared by the exporter that writes them and the Runtime that refills them.</summary>
public static class AdapterStackNames
{
    private static readonly (AdapterStackKind Kind, string Suffix)[] Suffixes =
    [
        (AdapterStackKind.LoraA, ".lora_A.stacked"),
        (AdapterStackKind.LoraB, ".lora_B.stacked"),
        (AdapterStackKind.LoraBias, ".lora_B.bias_stacked"),
        (AdapterStackKind.DoraScale, ".lora_magnitude_scale_stacked"),
        (AdapterStackKind.Ia3, ".ia3_l.stacked"),
        (AdapterStackKind.LoraRows, ".lora_rows.stacked"),
    ];

    public static string Name(string modulePath, AdapterStackKind kind) => modulePath + Suffixes.Single(s => s.Kind == kind).Suffix;

    /// <summary>The module path and kind of a stacked tensor's name; null for any other name.</summary>
    public static (string ModulePath, AdapterStackKind Kind)? Parse(string name)
    {
        foreach (var (kind, suffix) in Suffixes)
            if (name.EndsWith(suffix, StringComparison.Ordinal) && name.Length > suffix.Length) return (name[..^suffix.Length], kind);
        return null;
    }

    /// <summary>The value of a slot no adapter of this kind fills (the base's): 0 for LoRA terms, 1 for the multiplicative DoRA and IA3 factors.</summary>
    public static float Neutral(AdapterStackKind kind) => kind is AdapterStackKind.DoraScale or AdapterStackKind.Ia3 ? 1f : 0f;
}
