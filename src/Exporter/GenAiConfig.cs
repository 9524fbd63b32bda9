using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Graphs;

namespace Peft.Onnx.Exporter;

/// <summary>
/// genai_config.json, the model description ONNX Runtime GenAI (0.18) reads beside the graphs.
/// <para>
/// Decoder-only: <c>model.type = "decoder"</c> (GenAI's generic decoder, which takes Optimum's names; its "gpt2" type
/// wants stacked past tensors instead) with our input/output names (<see cref="CausalLmInterface"/>), context_length,
/// hidden_size, num_attention_heads, num_key_value_heads, head_size, num_hidden_layers, and bos/eos/pad token ids and
/// vocab_size. <c>search.past_present_share_buffer</c> is false: present = concat(past, new), one longer each step.
/// </para>
/// <para>
/// Encoder-decoder: <c>model.type</c> is the family's model_type, <c>model.encoder</c> names
/// encoder_model.onnx with its inputs and outputs (encoder_hidden_states = last_hidden_state, cross-attention present
/// names) and <c>model.decoder</c> decoder_model.onnx with the self and cross past names of
/// <see cref="Seq2SeqInterface"/>, plus decoder_start_token_id. GenAI 0.18 parses this file but has no model type for
/// our encoder-decoder families (its encoder-decoder types, whisper and marian-ssru, expect other graph interfaces),
/// so it refuses them; the mapping is complete for tools that read it.
/// </para>
/// <para>Checked by hand with Microsoft.ML.OnnxRuntimeGenAI 0.18.0 (CPU): greedy generation from our decoder-only
/// exports (every decoder-only family with merged LoRA, and one in fp16) equals PEFT's. GenAI rejects unknown keys and null
/// numbers, so token ids a config lacks are left out.</para>
/// context_length is the config's <see cref="ModelConfig.ContextWindow"/>; for families without one it is read from the
/// usual config.json keys, else <see cref="DefaultContextLength"/>. search.max_length = context_length;
/// sampling defaults come from generation_config.json when present (greedy otherwise).
/// </summary>
public static class GenAiConfig
{
    public const string FileName = "genai_config.json";
    public const int DefaultContextLength = 2048;

    /// <summary>One graph's entry: its file, sizes and the names of its inputs and outputs.</summary>
    private static JsonObject Section(string file, ModelDimensions d, int layers, JsonObject inputs, JsonObject outputs) => new()
    {
        ["filename"] = file,
        ["session_options"] = SessionOptions(),
        ["hidden_size"] = d.HiddenSize,
        ["num_attention_heads"] = d.NumHeads,
        ["num_key_value_heads"] = d.NumKeyValueHeads,
        ["head_size"] = d.HeadDim,
        ["num_hidden_layers"] = layers,
        ["inputs"] = inputs,
        ["outputs"] = outputs,
    };

    private static readonly string[] ContextKeys = ["max_position_embeddings", "n_positions", "seq_length", "n_ctx", "max_sequence_length"];

    public static JsonObject Create(ModelConfig config, string modelDir)
    {
        var d = config.Dimensions;
        int contextLength = config.ContextWindow?.Positions ?? ContextLengthFromJson(Path.Combine(modelDir, ModelConfig.FileName));
        var generation = GenerationConfig.TryLoad(modelDir);

        var model = new JsonObject
        {
            ["type"] = config.Family.GenAiModelType,
            ["context_length"] = contextLength,
            ["vocab_size"] = d.VocabSize,
            ["bos_token_id"] = FirstOrNull(config.BosTokenId),
            ["eos_token_id"] = config.EosTokenId is { Length: > 1 } many ? new JsonArray(many.Select(e => (JsonNode)e).ToArray()) : FirstOrNull(config.EosTokenId),
            ["pad_token_id"] = config.PadTokenId ?? FirstOrNull(config.EosTokenId),
        };
        // GenAI rejects null numbers: a token id the config does not have is left out
        foreach (var key in model.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) model.Remove(key);
        if (config.IsEncoderDecoder)
        {
            model["decoder_start_token_id"] = config.DecoderStartId;
            model["encoder"] = Section(Seq2SeqContract.EncoderFile, d, d.NumLayers,
                new JsonObject
                {
                    ["input_ids"] = Seq2SeqContract.InputIds,
                    ["attention_mask"] = Seq2SeqContract.AttentionMask,
                },
                new JsonObject
                {
                    ["encoder_hidden_states"] = Seq2SeqContract.LastHiddenState,
                    ["cross_present_key_names"] = Seq2SeqContract.PresentCrossKeyPattern,
                    ["cross_present_value_names"] = Seq2SeqContract.PresentCrossValuePattern,
                });
            model["decoder"] = Section(Seq2SeqContract.DecoderFile, d, d.NumDecoderLayers,
                new JsonObject
                {
                    ["input_ids"] = Seq2SeqContract.InputIds,
                    ["encoder_attention_mask"] = Seq2SeqContract.EncoderAttentionMask,
                    ["past_key_names"] = Seq2SeqContract.PastSelfKeyPattern,
                    ["past_value_names"] = Seq2SeqContract.PastSelfValuePattern,
                    ["cross_past_key_names"] = Seq2SeqContract.PastCrossKeyPattern,
                    ["cross_past_value_names"] = Seq2SeqContract.PastCrossValuePattern,
                },
                new JsonObject
                {
                    ["logits"] = Seq2SeqContract.Logits,
                    ["present_key_names"] = Seq2SeqContract.PresentSelfKeyPattern,
                    ["present_value_names"] = Seq2SeqContract.PresentSelfValuePattern,
                });
        }
        else
        {
            var inputs = new JsonObject
            {
                ["input_ids"] = CausalLmContract.InputIds,
                ["attention_mask"] = CausalLmContract.AttentionMask,
            };
            if (config.Family.TakesPositionIds) inputs["position_ids"] = CausalLmContract.PositionIds;
            inputs["past_key_names"] = CausalLmContract.PastKeyPattern;
            inputs["past_value_names"] = CausalLmContract.PastValuePattern;
            model["decoder"] = Section(CausalLmContract.ModelFile, d, d.NumLayers, inputs,
                new JsonObject
                {
                    ["logits"] = CausalLmContract.Logits,
                    ["present_key_names"] = CausalLmContract.PresentKeyPattern,
                    ["present_value_names"] = CausalLmContract.PresentValuePattern,
                });
        }

        var search = new JsonObject
        {
            ["diversity_penalty"] = 0.0,
            ["do_sample"] = generation?.DoSample ?? false,
            ["early_stopping"] = true,
            ["length_penalty"] = 1.0,
            ["max_length"] = contextLength,
            ["min_length"] = 0,
            ["no_repeat_ngram_size"] = 0,
            ["num_beams"] = generation?.NumBeams ?? 1,
            ["num_return_sequences"] = 1,
            ["past_present_share_buffer"] = false,
            ["repetition_penalty"] = generation?.RepetitionPenalty ?? 1.0,
            ["temperature"] = generation?.Temperature ?? 1.0,
            ["top_k"] = generation is { DoSample: true } ? generation.TopK : 1,
            ["top_p"] = generation?.TopP ?? 1.0,
        };
        return new JsonObject
        {
            ["model"] = model,
            ["search"] = search,
        };
    }

    /// <summary>
    /// <paramref name="json"/> (a genai_config.json text) with model.decoder.inputs.position_ids removed when the graph
    /// has no such input (<paramref name="graphInputs"/>): baked prompt / prefix exports compute positions in-graph.
    /// </summary>
    public static string MatchInputs(string json, IEnumerable<string> graphInputs)
    {
        var root = JsonNode.Parse(json)!.AsObject();
        if (root["model"]?["decoder"]?["inputs"] is not JsonObject inputs || graphInputs.Contains(CausalLmContract.PositionIds)) return json;
        return inputs.Remove("position_ids") ? root.ToJson() : json;
    }

    public static string ToJson(this JsonObject o) => o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>The first of <see cref="ContextKeys"/> in config.json (the last occurrence of a repeated key, as Python reads it).</summary>
    private static int ContextLengthFromJson(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        var values = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in doc.RootElement.EnumerateObject())
            if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var n)) values[p.Name] = n;
        foreach (var key in ContextKeys)
            if (values.TryGetValue(key, out var n) && n > 0) return n;
        return DefaultContextLength;
    }

    private static JsonObject SessionOptions() => new() { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() };

    private static JsonNode? FirstOrNull(int[]? ids) => ids is { Length: > 0 } ? JsonValue.Create(ids[0]) : null;
}
