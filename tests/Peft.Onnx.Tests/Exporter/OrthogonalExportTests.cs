using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Training;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// The OFT (W' = W @ R^T), HRA (W' = W @ H_1 ... H_r) and BOFT (W' = (W @ R^T) * s) adapters both the trainer and the
/// exporter refuse, with the same one-line message, before anything is written (their merged exports:
/// CurrentMethodExportTests).
/// </summary>
public class OrthogonalExportTests
{
    private static string Changed(string arch, string method, IReadOnlyDictionary<string, JsonNode?> keys, (string Name, long[] Shape)? reshaped = null) =>
        EditedAdapter.Write(arch, method, keys, reshaped);

    private const string BloomQkv = "base_model.model.transformer.h.0.self_attention.query_key_value.";
    private const string Qkv = "transformer.h.0.self_attention.query_key_value";

    /// <summary>The tensor a plain "reshape" case changes; "reshape:LEAF" names another.</summary>
    private static readonly Dictionary<string, string> MainTensor = new() { ["oft"] = "oft_R.weight", ["hra"] = "hra_u", ["boft"] = "boft_R" };

    public static TheoryData<string, string, string, string> BadAdapters() => new()
    {
        // method, changed key or "reshape", value (JSON; "remove" drops the key; the reshaped tensor's new shape), expected part of the message
        { "oft", "reshape", "[4, 28]", $"tensor '{BloomQkv}oft_R.weight' has shape [4, 28] but the base model needs [8, 28] (OFT rotation, 8 blocks of 8 on 'transformer.h.0.self_attention.query_key_value' (in 64))" },
        { "oft", "oft_block_size", "12", "oft_block_size = 12 does not divide in_features 64 of 'transformer.h.0.self_attention.query_key_value' (expected a divisor of 64)" },
        { "oft", "r", "3", "r = 3 and oft_block_size = 8 (expected exactly one of them nonzero)" },
        { "oft", "oft_block_size", "remove", "oft_block_size is missing: an OFT adapter from PEFT before 0.14" },
        { "oft", "coft", "true", "coft = true is invalid (expected false (constrained OFT is not implemented))" },
        { "oft", "bias", "\"all\"", "bias = \"all\" is invalid (expected \"none\"" },
        { "oft", "layers_to_transform", "[0]", "layers_to_transform = [0] is not supported for OFT adapters" },
        { "oft", "num_cayley_neumann_terms", "1", "num_cayley_neumann_terms = 1 is invalid (expected an integer of at least 2)" },
        { "oft", "exclude_modules", "[\"query_key_value\"]", "matches no module" },
        { "hra", "reshape", "[64, 2]", $"tensor '{BloomQkv}hra_u' has shape [64, 2] but the base model needs [64, 4] (HRA reflections, r = 4 on 'transformer.h.0.self_attention.query_key_value' (in 64))" },
        { "hra", "r", "0", "r = 0 is invalid (expected a positive integer)" },
        { "hra", "bias", "\"lora_only\"", "bias = \"lora_only\" is invalid (expected \"none\"" },
        { "hra", "layers_pattern", "\"h\"", "layers_pattern = \"h\" is not supported for HRA adapters" },
        { "hra", "exclude_modules", "[\"dense\"]", "exclude_modules = [\"dense\"] is not supported for HRA adapters" },
        { "boft", "reshape", "[1, 4, 8, 8]", $"tensor '{BloomQkv}boft_R' has shape [1, 4, 8, 8] but the base model needs [1, 8, 8, 8] (BOFT rotation, 1 butterfly factor(s) of 8 blocks of 8 on '{Qkv}' (in 64))" },
        { "boft", "reshape:boft_s", "[64, 1]", $"tensor '{BloomQkv}boft_s' has shape [64, 1] but the base model needs [192, 1] (BOFT output scale of '{Qkv}' (out 192))" },
        { "boft", "boft_block_size", "12", $"boft_block_size = 12 does not divide in_features 64 of '{Qkv}' (expected a divisor of 64)" },
        { "boft", "boft_block_num", "3", "boft_block_size = 8 and boft_block_num = 3 (expected exactly one of them nonzero)" },
        { "boft", "boft_block_size", "0", "boft_block_size = 0 and boft_block_num = 0 (expected exactly one of them nonzero)" },
        { "boft", "boft_n_butterfly_factor", "0", "boft_n_butterfly_factor = 0 is invalid (expected a positive integer)" },
        { "boft", "boft_n_butterfly_factor", "5", $"boft_block_size = 8 with boft_n_butterfly_factor = 5 does not fit in_features 64 of '{Qkv}' (expected block size x 2^4 = 128 to divide it)" },
        { "boft", "boft_dropout", "1.0", "boft_dropout = 1.0 is invalid (expected a probability in [0, 1))" },
        { "boft", "bias", "\"lora_only\"", "bias = \"lora_only\" is invalid (expected \"none\", \"all\" or \"boft_only\")" },
        { "boft", "layers_to_transform", "[0]", "layers_to_transform = [0] is not supported for BOFT adapters" },
        { "boft", "exclude_modules", "[\"query_key_value\"]", "matches no module" },
        { "boft", "exclude_modules", "3", "exclude_modules = 3 is invalid (expected null, a regular expression (string) or a list of module names)" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string method, string key, string value, string expected)
    {
        var tensorName = BloomQkv + (key.StartsWith("reshape:", StringComparison.Ordinal) ? key["reshape:".Length..] : MainTensor[method]);
        var adapter = key.StartsWith("reshape", StringComparison.Ordinal)
            ? Changed("bloom", method, new Dictionary<string, JsonNode?>(), (tensorName, JsonSerializer.Deserialize<long[]>(value)!))
            : Changed("bloom", method, new Dictionary<string, JsonNode?> { [key] = value == "remove" ? null : JsonNode.Parse(value) });
        SameRefusal.Check("bloom", adapter, expected);
    }

    [Theory]
    [InlineData("OFT", "\"r\": 0, \"oft_block_size\": 8")]
    [InlineData("HRA", "\"r\": 4")]
    [InlineData("BOFT", "\"boft_block_size\": 8, \"boft_block_num\": 0")]
    public void Gpt2_conv1d_targets_are_refused_as_peft_refuses_them(string peftType, string keys) =>
        SameRefusal.CheckConv1D(peftType, keys, peftType);
}
