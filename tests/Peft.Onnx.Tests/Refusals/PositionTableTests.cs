using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Refusals;

/// <summary>
/// Which families have a hard position limit (a learned table: GPT-2, OPT) and how sequences plus an adapter's
/// virtual tokens are checked against it; RoPE, ALiBi and T5's buckets compute at any length, as in transformers.
/// </summary>
public class PositionTableTests
{
    private static ModelConfig Base(string arch) => ModelConfig.Load(Paths.Case(arch, "base_model"));

    [Theory]
    [InlineData("gpt2", "n_positions", 128)]
    [InlineData("opt", "max_position_embeddings", 128)]
    public void Learned_tables_limit_the_positions(string arch, string key, int positions)
    {
        var table = Base(arch).PositionTable!;
        Assert.Equal((positions, key), (table.Positions, table.Key));
        table.Check(positions, 0, "inputs.safetensors");
        var ex = Assert.Throws<PeftOnnxException>(() => table.Check(positions + 1, 0, "inputs.safetensors"));
        Assert.StartsWith($"inputs.safetensors: sequences of {positions + 1} tokens do not fit the model: ", ex.Message);
        Assert.Contains($"{key} = {positions}", ex.Message);
        Assert.Contains($"use at most {positions} tokens", ex.Message);
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("llama")]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Relative_positions_have_no_table(string arch) => Assert.Null(Base(arch).PositionTable);

    [Theory]
    [InlineData("prompt_tuning_random")]
    [InlineData("p_tuning_mlp")]
    [InlineData("prefix")]
    public void Virtual_tokens_take_positions(string method)
    {
        var adapter = AdapterConfig.Load(Paths.Case("gpt2", Path.Combine(method, "adapter")));
        int virtualTokens = adapter.VirtualTokensBeforeInput;
        Assert.Equal(((PromptLearningConfig)adapter).NumVirtualTokens, virtualTokens);
        var table = Base("gpt2").PositionTable!;
        table.Check(128 - virtualTokens, virtualTokens, "batch");
        var ex = Assert.Throws<PeftOnnxException>(() => table.Check(129 - virtualTokens, virtualTokens, "batch"));
        Assert.Contains($"plus the adapter's {virtualTokens} virtual tokens (129 positions)", ex.Message);
        Assert.Contains($"use at most {128 - virtualTokens} tokens", ex.Message);
    }

    [Fact]
    public void Virtual_tokens_that_fill_the_table_are_refused_when_the_adapter_is_attached()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.Case("gpt2", "base_model"), ModelConfig.FileName)))!.AsObject();
        json["n_positions"] = 8;
        var model = ModelConfig.Parse(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), "/base/config.json");
        var adapter = AdapterConfig.Load(Paths.Case("gpt2", Path.Combine("prompt_tuning_random", "adapter")));
        var arch = Peft.Onnx.Core.Architectures.Architecture.For(model);
        var ex = Assert.Throws<PeftOnnxException>(() => adapter.CountParameters(arch));
        Assert.EndsWith("adapter_config.json: num_virtual_tokens = 8 fills the model's 8 positions (/base/config.json: n_positions = 8), leaving none for the input (expected fewer than 8)", ex.Message);
    }

    [Theory]
    [InlineData("prompt_tuning_random", "token_dim", 32, "expected 64, the width of its input embeddings")]
    [InlineData("p_tuning_lstm", "token_dim", 128, "expected 64, the width of its input embeddings")]
    [InlineData("prefix", "num_layers", 3, "expected 2, its layer count")]
    [InlineData("prefix", "num_attention_heads", 8, "(expected 4)")]
    [InlineData("prefix", "token_dim", 48, "expected 64, its hidden size")]
    public void Prompt_sizes_of_another_base_are_refused_when_the_adapter_is_attached(string method, string key, int value, string expected)
    {
        var dir = Paths.Case("gpt2", Path.Combine(method, "adapter"));
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, AdapterConfig.FileName)))!.AsObject();
        json[key] = value;
        var adapter = AdapterConfig.Parse(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), "/a/adapter_config.json");
        var model = Base("gpt2");
        // inspect counts from the configs alone: it is refused there too, not only when weights are read
        var ex = Assert.Throws<PeftOnnxException>(() => adapter.CountParameters(Peft.Onnx.Core.Architectures.Architecture.For(model)));
        Assert.StartsWith($"/a/adapter_config.json: {key} = {value} does not fit the base model {model.SourcePath} (", ex.Message);
        Assert.Contains(expected, ex.Message);
        Assert.EndsWith("the adapter was made for another model", ex.Message);
    }

    [Fact]
    public void Lora_takes_no_positions() =>
        Assert.Equal(0, AdapterConfig.Load(Paths.Case("gpt2", Path.Combine("lora", "adapter"))).VirtualTokensBeforeInput);

    [Fact]
    public void Generation_budget_stops_where_the_table_ends()
    {
        var table = Base("gpt2").PositionTable!;
        Assert.Equal(10, table.NewTokensThatFit(100, 0, 10));
        Assert.Equal(2, table.NewTokensThatFit(126, 0, 10));
        Assert.Equal(0, table.NewTokensThatFit(120, 8, 10));
        Assert.Equal(0, table.NewTokensThatFit(200, 0, 10));
    }
}
