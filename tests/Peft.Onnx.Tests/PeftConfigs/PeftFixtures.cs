using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Tests.Support;

namespace Peft.Onnx.Tests.PeftConfigs;

/// <summary>The adapter configs and base configs of tests/fixtures, by case name.</summary>
internal static class PeftFixtures
{
    /// <summary>"arch/method" for the 54 PEFT reference cases.</summary>
    public static IEnumerable<string> ReferenceCases => Paths.Archs.SelectMany(a => Paths.Methods.Select(m => $"{a}/{m}"));

    /// <summary>"model/method" for the PEFT guide configs (bloomz-560m, mt0-large, t5-large).</summary>
    public static readonly string[] DocCases =
        ["bloomz-560m/p_tuning", "bloomz-560m/prefix", "bloomz-560m/prompt_tuning", "mt0-large/ia3", "t5-large/prefix"];

    public static string AdapterDir(string referenceCase) => Path.Combine(Paths.Reference, referenceCase, "adapter");
    public static string BaseDir(string referenceCase) => Path.Combine(Paths.Reference, referenceCase.Split('/')[0], "base_model");
    public static string DocDir(string docCase) => Path.Combine(Paths.DocConfigs, docCase);
    public static string DocBaseDir(string docCase) => Path.Combine(Paths.DocConfigs, docCase.Split('/')[0]);

    /// <summary>The tiny 2-layer BLOOM of the reference fixtures (hidden 64, vocab 1000).</summary>
    public static Architecture TinyBloom() => Architecture.For(ModelConfig.Load(Path.Combine(Paths.Reference, "bloom", "base_model")));
}
