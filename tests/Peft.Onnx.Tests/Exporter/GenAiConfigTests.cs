using System.Text.Json;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>genai_config.json written beside every export: ORT GenAI 0.18's fields, consistent with config.json and the graphs.</summary>
public class GenAiConfigTests
{
    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("bloom")]
    public void Decoder_only_config_names_the_graph_inputs_and_sizes(string arch)
    {
        var dir = TempExports.FreshPath();
        try
        {
            OnnxExport.ExportBase(Paths.Case(arch, "base_model"), dir);
            var config = ModelConfig.Load(Paths.Case(arch, "base_model"));
            var d = config.Dimensions;
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, GenAiConfig.FileName)));
            var model = doc.RootElement.GetProperty("model");
            Assert.Equal("decoder", model.GetProperty("type").GetString());
            Assert.Equal(d.VocabSize, model.GetProperty("vocab_size").GetInt32());
            Assert.Equal(config.EosTokenId![0], model.GetProperty("eos_token_id").GetInt32());
            Assert.True(model.TryGetProperty("bos_token_id", out _));
            Assert.True(model.TryGetProperty("pad_token_id", out _));
            Assert.True(model.GetProperty("context_length").GetInt32() > 0);
            var decoder = model.GetProperty("decoder");
            Assert.Equal(d.HiddenSize, decoder.GetProperty("hidden_size").GetInt32());
            Assert.Equal(d.NumHeads, decoder.GetProperty("num_attention_heads").GetInt32());
            Assert.Equal(d.NumKeyValueHeads, decoder.GetProperty("num_key_value_heads").GetInt32());
            Assert.Equal(d.HeadDim, decoder.GetProperty("head_size").GetInt32());
            Assert.Equal(d.NumLayers, decoder.GetProperty("num_hidden_layers").GetInt32());

            var file = decoder.GetProperty("filename").GetString()!;
            var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, file))).Graph;
            var inputs = graph.Input.Select(i => i.Name).ToHashSet();
            var outputs = graph.Output.Select(o => o.Name).ToHashSet();
            foreach (var p in decoder.GetProperty("inputs").EnumerateObject())
                for (int i = 0; i < d.NumLayers; i++) Assert.Contains(p.Value.GetString()!.Replace("%d", $"{i}"), inputs);
            foreach (var p in decoder.GetProperty("outputs").EnumerateObject())
                for (int i = 0; i < d.NumLayers; i++) Assert.Contains(p.Value.GetString()!.Replace("%d", $"{i}"), outputs);
            // every input without a default is mapped (num_logits_to_keep has one: GenAI leaves it at 0, every position)
            var defaulted = graph.Initializer.Select(t => t.Name).ToHashSet();
            Assert.Equal(["num_logits_to_keep"], inputs.Where(defaulted.Contains));
            Assert.Equal(inputs.Count - 1, 2 + (inputs.Contains("position_ids") ? 1 : 0) + 2 * d.NumLayers);

            var search = doc.RootElement.GetProperty("search");
            Assert.False(search.GetProperty("past_present_share_buffer").GetBoolean());
            Assert.Equal(model.GetProperty("context_length").GetInt32(), search.GetProperty("max_length").GetInt32());
            Assert.True(search.TryGetProperty("do_sample", out _));
            Assert.True(File.Exists(Path.Combine(dir, "config.json")));
            AssertNoNulls(doc.RootElement, "genai_config");  // ORT GenAI refuses null numbers
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    private static void AssertNoNulls(JsonElement e, string path)
    {
        Assert.True(e.ValueKind != JsonValueKind.Null, $"{path} is null");
        if (e.ValueKind == JsonValueKind.Object) foreach (var p in e.EnumerateObject()) AssertNoNulls(p.Value, $"{path}.{p.Name}");
        if (e.ValueKind == JsonValueKind.Array) foreach (var v in e.EnumerateArray()) AssertNoNulls(v, path + "[]");
    }

    [Fact]
    public void Encoder_decoder_config_maps_both_graphs()
    {
        var dir = TempExports.FreshPath();
        try
        {
            OnnxExport.ExportBase(Paths.Case("t5", "base_model"), dir);
            var config = (T5Config)ModelConfig.Load(Paths.Case("t5", "base_model"));
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, GenAiConfig.FileName)));
            var model = doc.RootElement.GetProperty("model");
            Assert.Equal("t5", model.GetProperty("type").GetString());
            Assert.Equal(config.DecoderStartId, model.GetProperty("decoder_start_token_id").GetInt32());
            Assert.False(model.TryGetProperty("bos_token_id", out _)); // T5 has none: left out, not null
            AssertNoNulls(doc.RootElement, "genai_config");
            foreach (var (part, layers) in new[] { ("encoder", config.Dimensions.NumDecoderLayers), ("decoder", config.Dimensions.NumDecoderLayers) })
            {
                var section = model.GetProperty(part);
                var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, section.GetProperty("filename").GetString()!))).Graph;
                foreach (var p in section.GetProperty("inputs").EnumerateObject())
                    for (int i = 0; i < layers; i++) Assert.Contains(p.Value.GetString()!.Replace("%d", $"{i}"), graph.Input.Select(x => x.Name));
                foreach (var p in section.GetProperty("outputs").EnumerateObject())
                    for (int i = 0; i < layers; i++) Assert.Contains(p.Value.GetString()!.Replace("%d", $"{i}"), graph.Output.Select(x => x.Name));
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
