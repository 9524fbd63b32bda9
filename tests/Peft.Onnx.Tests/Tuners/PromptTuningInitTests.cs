using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PromptTuning;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>Prompt tuning's TEXT init (tokenizer found from the adapter config, ids repeated or cut) and its bad inputs.</summary>
public class PromptTuningInitTests
{
    public static TheoryData<string> Archs => new(Paths.Archs);

    private const string Weight = "prompt_encoder.default.embedding.weight";

    [Theory, MemberData(nameof(Archs))]
    public void Text_init_copies_the_word_embeddings_of_the_init_text(string arch)
    {
        var config = AdapterConfig.Load(PromptLearningCases.AdapterDir(arch, "prompt_tuning_text")) with { InferenceMode = false };
        using var model = PeftModel.Create(ModelLoader.Load(PromptLearningCases.BaseDir(arch)), config);
        using var expected = PromptLearningCases.Expected(arch, "prompt_tuning_text");
        var (name, weight) = Assert.Single(model.Tuner.TrainableParameters);
        Assert.Equal(Weight, name);
        Assert.Equal(expected["init." + Weight].Shape, weight.shape);
        Assert.Equal(expected.ReadFloat32("init." + Weight), PromptLearningCases.Floats(weight));
    }

    [Fact]
    public void Init_ids_repeat_then_cut_to_the_virtual_tokens()
    {
        var tokenizer = HfTokenizer.FromFolder(Path.Combine(Paths.Reference, "tokenizer"));
        var ids = tokenizer.Encode("Classify if the tweet is a complaint or not:");
        var sixteen = PromptTuner.InitTextIds(tokenizer, "Classify if the tweet is a complaint or not:", 16);
        Assert.Equal(16, sixteen.Count);
        Assert.Equal(Enumerable.Range(0, 16).Select(i => ids[i % ids.Count]), sixteen);
        var three = PromptTuner.InitTextIds(tokenizer, "Classify if the tweet is a complaint or not:", 3);
        Assert.Equal(ids.Take(3), three);
    }

    [Fact]
    public void Text_init_with_an_absolute_tokenizer_path_works_for_a_config_built_in_code()
    {
        using var baseModel = ModelLoader.Load(PromptLearningCases.BaseDir("gpt2"));
        var config = TextConfig(Path.Combine(Paths.Reference, "tokenizer"));
        using var tuner = new PromptTuner(baseModel, config);
        using var expected = PromptLearningCases.Expected("gpt2", "prompt_tuning_text");
        Assert.Equal(expected.ReadFloat32("init." + Weight), PromptLearningCases.Floats(tuner.TrainableParameters[0].Parameter));
    }

    [Fact]
    public void Text_init_without_a_tokenizer_fails_clearly()
    {
        using var baseModel = ModelLoader.Load(PromptLearningCases.BaseDir("gpt2"));
        var ex = Assert.Throws<PeftOnnxException>(() => new PromptTuner(baseModel, TextConfig(null)));
        Assert.Contains("tokenizer_name_or_path", ex.Message);
    }

    [Fact]
    public void Text_init_with_a_missing_tokenizer_folder_fails_clearly()
    {
        using var baseModel = ModelLoader.Load(PromptLearningCases.BaseDir("gpt2"));
        var ex = Assert.Throws<PeftOnnxException>(() => new PromptTuner(baseModel, TextConfig("no-such-tokenizer")));
        Assert.Contains("no-such-tokenizer", ex.Message);
        Assert.Contains("not a local tokenizer folder", ex.Message);
    }

    [Fact]
    public void Text_init_refuses_a_relative_path_that_leaves_its_folder()
    {
        using var baseModel = ModelLoader.Load(PromptLearningCases.BaseDir("gpt2"));
        var ex = Assert.Throws<PeftOnnxException>(() => new PromptTuner(baseModel, TextConfig("../../../../../../../../tmp")));
        Assert.Contains("leaves the folder", ex.Message);
    }

    [Fact]
    public void Saved_text_adapter_loads_without_its_tokenizer()
    {
        // inference_mode true: PEFT skips the init, so the tokenizer is not needed to load the adapter.
        var source = PromptLearningCases.AdapterDir("gpt2", "prompt_tuning_text");
        var dir = Paths.TempDir();
        try
        {
            File.Copy(Path.Combine(source, "adapter_model.safetensors"), Path.Combine(dir, "adapter_model.safetensors"));
            var config = (PromptTuningConfig)AdapterConfig.Load(source);
            (config with { TokenizerNameOrPath = "does-not-exist" }).Save(dir);
            using var model = PeftModel.Load(PromptLearningCases.BaseDir("gpt2"), dir);
            Assert.Equal(8, model.Tuner.PrependedTokens);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Non_positive_num_virtual_tokens_is_rejected(int tokens)
    {
        var json = $$"""{"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": {{tokens}}}""";
        var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfig.Parse(System.Text.Encoding.UTF8.GetBytes(json), "adapter_config.json"));
        Assert.Contains("num_virtual_tokens", ex.Message);
    }

    private static PromptTuningConfig TextConfig(string? tokenizer) => new()
    {
        TaskType = AdapterConfig.CausalLm,
        NumVirtualTokens = 8,
        PromptTuningInit = PromptTuningConfig.Text,
        PromptTuningInitText = "Classify if the tweet is a complaint or not:",
        TokenizerNameOrPath = tokenizer,
    };
}
