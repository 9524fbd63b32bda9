using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>Shared access to the prompt-learning reference cases (prompt tuning, p-tuning, prefix tuning).</summary>
internal static class PromptLearningCases
{
    public static readonly string[] Methods =
        ["prompt_tuning_random", "prompt_tuning_text", "p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_proj"];

    public static TheoryDataBuilderFor All => new(Paths.Archs.SelectMany(a => Methods.Select(m => (a, m))));

    public static string BaseDir(string arch) => Paths.Case(arch, "base_model");
    public static string AdapterDir(string arch, string method) => Path.Combine(Paths.Case(arch, method), "adapter");
    public static SafeTensorsFile Expected(string arch, string method) => SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));

    public static PeftModel LoadSaved(string arch, string method) => PeftModel.Load(BaseDir(arch), AdapterDir(arch, method));

    /// <summary>A model with the adapter attached for training (inference_mode false), its parameters set to the reference's init.* tensors.</summary>
    public static PeftModel CreateFromInit(string arch, string method)
    {
        var config = AdapterConfig.Load(AdapterDir(arch, method)) with { InferenceMode = false };
        var model = PeftModel.Create(ModelLoader.Load(BaseDir(arch)), config, seed: 1);
        using var expected = Expected(arch, method);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.Tuner.TrainableParameters)
        {
            using var init = tensor(expected.ReadFloat32("init." + name), expected["init." + name].Shape);
            parameter.copy_(init);
        }
        return model;
    }

    public static PromptLearningTuner Tuner(PeftModel model) => (PromptLearningTuner)model.Tuner;

    public static float[] Floats(Tensor t) => t.detach().cpu().contiguous().data<float>().ToArray();

    /// <summary>TheoryData of (arch, method).</summary>
    public sealed class TheoryDataBuilderFor(IEnumerable<(string Arch, string Method)> cases)
    {
        public Xunit.TheoryData<string, string> Build()
        {
            var data = new Xunit.TheoryData<string, string>();
            foreach (var (a, m) in cases) data.Add(a, m);
            return data;
        }
    }
}
