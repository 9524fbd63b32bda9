using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Finetune;
using Xunit;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>--method + options become the PEFT config records a user would write in Python.</summary>
public class MethodConfigTests
{
    private static AdapterConfig For(string method, MethodOptions o, string model)
    {
        var config = ModelConfig.Load(model);
        var task = config.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        return FinetuneSetup.ConfigFor(method, o, task, model, HfTokenizer.FromFolder(model), config.Dimensions);
    }

    [Fact]
    public void Lora_takes_the_options_and_the_task_of_the_base_model()
    {
        var c = Assert.IsType<LoraConfig>(For("lora", new MethodOptions { R = 8, LoraAlpha = 16, TargetModules = ["q", "v"] }, FinetuneData.T5));
        Assert.Equal((8, 16.0, 0.0), (c.R, c.LoraAlpha, c.LoraDropout));
        Assert.Equal(["q", "v"], c.TargetModules!.Names!);
        Assert.Equal(AdapterConfig.Seq2SeqLm, c.TaskType);
        Assert.Null(Assert.IsType<LoraConfig>(For("lora", new MethodOptions(), FinetuneData.Bloom)).TargetModules);
    }

    [Fact]
    public void Prompt_tuning_text_init_uses_the_init_text_token_count()
    {
        var c = Assert.IsType<PromptTuningConfig>(For("prompt_tuning", new MethodOptions { PromptInitText = "Classify the sentiment of this financial news:" }, FinetuneData.Bloom));
        Assert.Equal(12, c.NumVirtualTokens); // BASELINES.md: its 12 tokens
        Assert.Equal(PromptTuningConfig.Text, c.PromptTuningInit);
    }

    [Fact]
    public void T5_prefix_tuning_is_sized_for_its_attention_width()
    {
        var c = Assert.IsType<PrefixTuningConfig>(For("prefix_tuning", new MethodOptions(), FinetuneData.T5));
        Assert.Equal((128, 4, 20), (c.TokenDim, c.NumAttentionHeads, c.NumVirtualTokens));
        var bloom = Assert.IsType<PrefixTuningConfig>(For("prefix_tuning", new MethodOptions(), FinetuneData.Bloom));
        Assert.Null(bloom.TokenDim);
    }

    [Fact]
    public void Options_of_another_method_are_refused()
    {
        Assert.Contains("--r", Assert.Throws<PeftOnnxException>(() => For("prefix_tuning", new MethodOptions { R = 4 }, FinetuneData.Bloom)).Message);
        Assert.Contains("--num-virtual-tokens", Assert.Throws<PeftOnnxException>(() => For("lora", new MethodOptions { NumVirtualTokens = 4 }, FinetuneData.Bloom)).Message);
        Assert.Contains("--prefix-projection", Assert.Throws<PeftOnnxException>(() => For("p_tuning", new MethodOptions { PrefixProjection = true }, FinetuneData.Bloom)).Message);
    }
}
