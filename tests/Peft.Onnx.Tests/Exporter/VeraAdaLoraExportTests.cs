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
/// The VeRA and AdaLoRA adapters both the trainer and the exporter refuse, with the same one-line message, before anything
/// is written (their merged exports: CurrentMethodExportTests).
/// </summary>
public class VeraAdaLoraExportTests
{
    private static string Changed(string arch, string method, IReadOnlyDictionary<string, JsonNode?> keys, params string[] dropped) =>
        EditedAdapter.Write(arch, method, keys, null, dropped);

    public static TheoryData<string, string, string, string, string> BadAdapters() => new()
    {
        // arch, method, changed key or "drop", value (JSON, or the dropped tensor), expected part of the message
        { "bloom", "vera", "drop", VeraConfig.SharedAKey, "missing 'base_model.vera_A' [16, 64]" },
        { "gpt2", "vera", "drop", VeraConfig.SharedBKey, "missing 'base_model.vera_B' [192, 16]" },
        { "bloom", "vera", "save_projection", "false", "save_projection = false is not supported for VERA adapters" },
        { "bloom", "vera", "r", "8", "tensor 'base_model.model.transformer.h.0.self_attention.query_key_value.vera_lambda_d' has shape [16] but the base model needs [8]" },
        { "bloom", "vera", "layers_to_transform", "[0]", "layers_to_transform = [0] is not supported for VERA adapters" },
        { "bloom", "vera", "bias", "\"vera_only\"", "bias = \"vera_only\" is not supported for VERA adapters" },
        { "bloom", "adalora", "init_r", "2", "has shape [4, 64] but the base model needs [2, 64]" },
        { "bloom", "adalora", "rank_pattern", "{\"transformer.h.0.self_attention.query_key_value\": [true, false, true, true]}", "rank_pattern = {\"transformer.h.0.self_attention.query_key_value\":[true,false,true,true]} is not supported for ADALORA adapters" },
        { "bloom", "adalora", "use_dora", "true", "use_dora = true is not supported for ADALORA adapters" },
        { "bloom", "adalora", "layer_replication", "[[0, 2]]", "layer_replication = [[0,2]] is not supported for ADALORA adapters" },
        { "bloom", "adalora", "bias", "\"all\"", "bias = \"all\" is not supported for ADALORA adapters" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string arch, string method, string key, string value, string expected)
    {
        var adapter = key == "drop"
            ? Changed(arch, method, new Dictionary<string, JsonNode?>(), value)
            : Changed(arch, method, new Dictionary<string, JsonNode?> { [key] = JsonNode.Parse(value) });
        SameRefusal.Check(arch, adapter, expected);
    }
}
