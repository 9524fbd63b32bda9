using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PrefixTuning;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>Parameter names, seeded initialisation, the trainable checkpoint and bad configs of the prompt methods.</summary>
public class PromptLearningStateTests
{
    public static TheoryData<string, string> Cases => PromptLearningCases.All.Build();

    [Theory, MemberData(nameof(Cases))]
    public void Trainable_parameters_have_peft_names_and_shapes(string arch, string method)
    {
        using var model = PromptLearningCases.CreateFromInit(arch, method);
        var meta = Reference.Meta(arch, method);
        var expected = meta.GetProperty("tensors").EnumerateObject()
            .Where(p => p.Name.StartsWith("init.", StringComparison.Ordinal))
            .ToDictionary(p => p.Name["init.".Length..], p => p.Value.EnumerateArray().Select(v => v.GetInt64()).ToArray());
        var actual = model.Tuner.TrainableParameters.ToDictionary(p => p.Name, p => p.Parameter.shape);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, shape) in expected) Assert.Equal(shape, actual[name]);
        Assert.All(model.Tuner.TrainableParameters, p => Assert.True(p.Parameter.requires_grad, p.Name));
        Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), model.Tuner.TrainableParameters.Sum(p => p.Parameter.numel()));
    }

    [Theory]
    [InlineData("gpt2", "p_tuning_lstm")]
    [InlineData("t5", "p_tuning_mlp")]
    [InlineData("bloom", "prefix_proj")]
    public void Trainable_state_round_trips_the_encoder(string arch, string method)
    {
        var file = Path.Combine(Paths.TempDir(), "trainable.safetensors");
        try
        {
            float[] before;
            using (var source = PromptLearningCases.CreateFromInit(arch, method))
            {
                source.Tuner.TrainableParameters[^1].Parameter.detach().add_(0.25f);   // not the init any more
                ((PromptLearningTuner)source.Tuner).SaveTrainableState(file);
                before = Output(source);
            }
            var config = AdapterConfig.Load(PromptLearningCases.AdapterDir(arch, method)) with { InferenceMode = false };
            using var restored = PeftModel.Create(ModelLoader.Load(PromptLearningCases.BaseDir(arch)), config, seed: 7);
            Assert.NotEqual(before, Output(restored));
            ((PromptLearningTuner)restored.Tuner).LoadTrainableState(file);
            Assert.Equal(before, Output(restored));
            Assert.False(((PromptLearningTuner)restored.Tuner).UsesStoredEmbeddings);
        }
        finally { Directory.Delete(Path.GetDirectoryName(file)!, true); }
    }

    [Fact]
    public void Loaded_p_tuning_adapter_uses_the_stored_rows_and_checkpoints_them()
    {
        using var loaded = PromptLearningCases.LoadSaved("opt", "p_tuning_mlp");
        var tuner = (PromptLearningTuner)loaded.Tuner;
        Assert.True(tuner.UsesStoredEmbeddings);
        var (name, _) = Assert.Single(tuner.TrainableParameters);
        Assert.Equal("prompt_encoder.default.embedding.weight", name);
        var file = Path.Combine(Paths.TempDir(), "trainable.safetensors");
        try
        {
            tuner.SaveTrainableState(file);
            var config = AdapterConfig.Load(PromptLearningCases.AdapterDir("opt", "p_tuning_mlp")) with { InferenceMode = false };
            using var other = PeftModel.Create(ModelLoader.Load(PromptLearningCases.BaseDir("opt")), config, seed: 3);
            var otherTuner = (PromptLearningTuner)other.Tuner;
            otherTuner.LoadTrainableState(file);
            Assert.True(otherTuner.UsesStoredEmbeddings);
            Assert.Equal(Output(loaded), Output(other));
        }
        finally { Directory.Delete(Path.GetDirectoryName(file)!, true); }
    }

    [Fact]
    public void Trainable_state_of_another_method_is_rejected()
    {
        var file = Path.Combine(Paths.TempDir(), "trainable.safetensors");
        try
        {
            using (var lstm = PromptLearningCases.CreateFromInit("gpt2", "p_tuning_lstm")) ((PromptLearningTuner)lstm.Tuner).SaveTrainableState(file);
            using var mlp = PromptLearningCases.CreateFromInit("gpt2", "p_tuning_mlp");
            var ex = Assert.Throws<PeftOnnxException>(() => ((PromptLearningTuner)mlp.Tuner).LoadTrainableState(file));
            Assert.Contains("lstm_head", ex.Message);
        }
        finally { Directory.Delete(Path.GetDirectoryName(file)!, true); }
    }

    [Fact]
    public void Adapter_file_with_wrong_prompt_shape_is_rejected()
    {
        using var model = PromptLearningCases.CreateFromInit("gpt2", "prompt_tuning_random");
        using var wrong = zeros(4, 64);
        var ex = Assert.Throws<PeftOnnxException>(() => model.Tuner.LoadAdapterStateDict(new Dictionary<string, Tensor> { ["prompt_embeddings"] = wrong }, "x.safetensors"));
        Assert.Contains("[8, 64]", ex.Message);
    }

    [Fact]
    public void Prefix_whose_head_split_does_not_fit_the_model_is_rejected()
    {
        using var baseModel = ModelLoader.Load(PromptLearningCases.BaseDir("gpt2"));
        var config = new PrefixTuningConfig { TaskType = AdapterConfig.CausalLm, NumVirtualTokens = 4, TokenDim = 48 };
        var ex = Assert.Throws<PeftOnnxException>(() => new PrefixTuner(baseModel, config));
        Assert.Contains("token_dim", ex.Message);
    }

    private static float[] Output(PeftModel model)
    {
        var state = model.Tuner.AdapterStateDict();
        try { return PromptLearningCases.Floats(state["prompt_embeddings"]); }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }
}
