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
/// The LoHa and LoKr adapters both the trainer and the exporter refuse, with the same one-line message, before anything
/// is written (their merged exports: CurrentMethodExportTests).
/// </summary>
public class LycorisExportTests
{
    private static string Changed(string arch, string method, IReadOnlyDictionary<string, JsonNode?> keys, (string Name, long[] Shape)? reshaped = null) =>
        EditedAdapter.Write(arch, method, keys, reshaped);

    public static TheoryData<string, string, string, string, string> BadAdapters() => new()
    {
        // arch, method, changed key or "reshape", value (JSON, or the reshaped tensor's new shape), expected part of the message
        {
            "bloom", "lokr", "reshape", "[16, 8]",
            "tensor 'base_model.model.transformer.h.0.self_attention.query_key_value.lokr_w1' has shape [16, 8] but the base model needs [12, 8] (LoKr w1, kron(w1 [12, 8], w2 [16, 8]) must be the weight's [192, 64] of 'transformer.h.0.self_attention.query_key_value', r = 2)"
        },
        { "bloom", "lokr", "decompose_factor", "4", "tensor 'base_model.model.transformer.h.0.self_attention.query_key_value.lokr_w1' has shape [12, 8] but the base model needs [4, 4]" },
        { "bloom", "loha", "r", "8", "tensor 'base_model.model.transformer.h.0.self_attention.query_key_value.hada_w1_a' has shape [192, 4] but the base model needs [192, 8]" },
        { "bloom", "loha", "layers_to_transform", "[0]", "layers_to_transform = [0] is not supported for LOHA adapters" },
        { "bloom", "lokr", "exclude_modules", "[\"dense\"]", "exclude_modules = [\"dense\"] is not supported for LOKR adapters" },
        { "bloom", "loha", "rank_dropout", "1.5", "rank_dropout = 1.5 is invalid (expected a probability in [0, 1))" },
        { "bloom", "lokr", "r", "0", "r = 0 is invalid (expected a positive integer)" },
        { "bloom", "loha", "target_modules", "[\"c_attn\"]", "matches no module" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string arch, string method, string key, string value, string expected)
    {
        var adapter = key == "reshape"
            ? Changed(arch, method, new Dictionary<string, JsonNode?>(),
                ("base_model.model.transformer.h.0.self_attention.query_key_value.lokr_w1", JsonSerializer.Deserialize<long[]>(value)!))
            : Changed(arch, method, new Dictionary<string, JsonNode?> { [key] = JsonNode.Parse(value) });
        SameRefusal.Check(arch, adapter, expected);
    }

    [Theory]
    [InlineData("LOHA", "LoHa")]
    [InlineData("LOKR", "LoKr")]
    public void Gpt2_conv1d_targets_are_refused_as_peft_refuses_them(string peftType, string name) =>
        SameRefusal.CheckConv1D(peftType, "\"r\": 4, \"alpha\": 4", name);
}
