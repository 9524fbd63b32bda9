using System.Text;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Refusals;

/// <summary>
/// Paths read from configs (weight_map shard names, tokenizer_name_or_path) that no file system takes or that climb
/// out of their folder end in a one-line PeftOnnxException naming the file and key, never an ArgumentException.
/// </summary>
public class PathRefusalTests
{
    [Theory]
    [InlineData("a\0b.safetensors", "holds a character that no file path can hold")]
    [InlineData("../model.safetensors", "escapes the folder")]
    [InlineData("sub/../../model.safetensors", "escapes the folder")]
    [InlineData("/etc/passwd", "must be relative")]
    [InlineData("", "must be relative")]
    public void SafePath_refuses_names_that_leave_the_folder_or_cannot_exist(string name, string expected)
    {
        var dir = Paths.TempDir();
        try
        {
            var ex = Assert.Throws<PeftOnnxException>(() => SafePath.Inside(dir, name, "model.safetensors.index.json"));
            Assert.StartsWith("model.safetensors.index.json: ", ex.Message);
            Assert.Contains(expected, ex.Message);
            Assert.DoesNotContain('\0', ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void SafePath_follows_links_as_the_hugging_face_cache_needs()
    {
        // A cached snapshot keeps each file as a link into ../../blobs: the name is inside, the target is not.
        var root = Paths.TempDir();
        try
        {
            var blobs = Directory.CreateDirectory(Path.Combine(root, "blobs")).FullName;
            var snapshot = Directory.CreateDirectory(Path.Combine(root, "snapshots", "abc")).FullName;
            SafeTensorsWriter.Write(Path.Combine(blobs, "0123"), [TensorData.FromFloat32("a", [2], [1f, 2f])]);
            File.CreateSymbolicLink(Path.Combine(snapshot, "model-00001-of-00001.safetensors"), Path.Combine("..", "..", "blobs", "0123"));
            File.WriteAllText(Path.Combine(snapshot, CheckpointTensors.IndexFile), "{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\"}}");
            using var tensors = CheckpointTensors.Open(snapshot);
            Assert.Equal([1f, 2f], tensors.ReadFloat32("a"));
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void Sharded_index_with_a_nul_in_a_shard_name_is_refused()
    {
        var dir = Paths.TempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, CheckpointTensors.IndexFile), "{\"weight_map\":{\"a\":\"a\\u0000b.safetensors\"}}");
            var ex = Assert.Throws<PeftOnnxException>(() => CheckpointTensors.Open(dir).Dispose());
            Assert.Contains(CheckpointTensors.IndexFile, ex.Message);
            Assert.Contains("'a\\u0000b.safetensors'", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Tokenizer_path_with_a_nul_is_refused_when_the_adapter_config_loads()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.Case("gpt2", Path.Combine("prompt_tuning_text", "adapter")), AdapterConfig.FileName)))!.AsObject();
        json["tokenizer_name_or_path"] = "gpt2\0/base_model";
        var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfig.Parse(Encoding.UTF8.GetBytes(json.ToJsonString()), "/a/adapter_config.json"));
        Assert.StartsWith("/a/adapter_config.json: tokenizer_name_or_path 'gpt2\\u0000/base_model' holds a character that no file path can hold", ex.Message);
    }

    [Theory]
    [InlineData("alpha_pattern", "{\"c_attn\": \"NaN\"}", "alpha_pattern[\"c_attn\"] = nan is invalid (expected a finite number)")]
    [InlineData("lora_alpha", "\"-Infinity\"", "lora_alpha = -inf is invalid (expected a finite number)")]
    [InlineData("rank_pattern", "{\"c_attn\": 0}", "rank_pattern[\"c_attn\"] = 0 is invalid (expected a positive integer)")]
    [InlineData("lora_dropout", "1.0", "lora_dropout = 1.0 is invalid (expected a probability in [0, 1))")]
    public void Lora_values_out_of_range_are_refused(string key, string value, string expected)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.Case("gpt2", Path.Combine("lora", "adapter")), AdapterConfig.FileName)))!.AsObject();
        json[key] = JsonNode.Parse(value);
        var ex = Assert.Throws<PeftOnnxException>(() => AdapterConfig.Parse(Encoding.UTF8.GetBytes(json.ToJsonString()), "adapter_config.json"));
        Assert.Equal($"adapter_config.json: {expected}", ex.Message);
    }
}
