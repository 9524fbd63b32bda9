using System.Text.Json;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>The LoRA cases of tests/fixtures/peft-current (PEFT 0.13.2 / 0.20.0): DoRA, DoRA on all-linear, lora_bias, exclude_modules.</summary>
public static class CurrentLoraCases
{
    public static readonly string[] Methods = ["lora_dora", "lora_dora_all", "lora_bias", "lora_exclude"];

    public static TheoryData<string, string> All
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var arch in Paths.Archs)
                foreach (var method in Methods)
                    data.Add(arch, method);
            return data;
        }
    }

    private static readonly JsonElement Manifest =
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.Current, "manifest.json"))).RootElement;

    /// <summary>Cases PEFT could not merge (lora_bias on layers without a bias): the fixture holds unmerged outputs only.</summary>
    public static bool PeftMerges(string arch, string method) => !Manifest.GetProperty("no_merge").TryGetProperty($"{arch}/{method}", out _);

    public static string Dir(string arch, string method) => Paths.CurrentCase(arch, method);
    public static string AdapterDir(string arch, string method) => Path.Combine(Dir(arch, method), "adapter");
    public static string BaseDir(string arch) => Paths.Case(arch, "base_model");
}
