namespace Peft.Onnx.Core.Onnx;

/// <summary>
/// File and tensor names of a decoder-only export, as Optimum and ORT GenAI ("decoder" type) name them:
/// input_ids [batch, seq] and attention_mask [batch, past + seq] (int64), position_ids [batch, seq] (int64, only
/// for families whose forward takes them), past_key_values.{i}.key|value [batch, kv_heads, past_seq, head_dim],
/// num_logits_to_keep (int64 scalar, optional, default 0 = every position) -> logits [batch, seq, vocab] and
/// present.{i}.key|value [batch, kv_heads, past + seq, head_dim]. One graph serves prefill and decoding; the
/// exporter writes these names and the Runtime reads them.
/// </summary>
public static class CausalLmContract
{
    public const string ModelFile = "model.onnx";

    /// <summary>External data of <see cref="ModelFile"/> (shared by <see cref="PrefixInCacheFile"/>).</summary>
    public const string DataFile = ModelFile + ".data";

    /// <summary>
    /// Written beside model.onnx by exports with a baked prompt or prefix: the same interface with the virtual tokens
    /// carried in the key/value cache (present holds them from the first step on; attention_mask still covers only the
    /// real tokens). model.onnx keeps the cache contract ORT GenAI expects; the Runtime prefers this one.
    /// </summary>
    public const string PrefixInCacheFile = "model_prefix_in_cache.onnx";

    /// <summary>
    /// Written beside model.onnx by prompt-tuning and p-tuning exports: a safetensors file holding
    /// <see cref="VirtualTokenLogits"/>. PEFT prepends num_virtual_tokens labels of -100 to the labels, so after the
    /// causal shift the last virtual token's logits score the first real label and that term is part of PEFT's loss;
    /// the graph has no output for virtual positions, and those logits do not depend on the input (the virtual tokens
    /// come first and see only each other), so the export computes them once. Prefix tuning has no such term.
    /// </summary>
    public const string VirtualTokenLogitsFile = "virtual_token_logits.safetensors";

    /// <summary>float32 [vocab]: the logits at the last virtual token of a baked soft prompt (in <see cref="VirtualTokenLogitsFile"/>).</summary>
    public const string VirtualTokenLogits = "last_virtual_token_logits";

    public const string InputIds = "input_ids";

    /// <summary>
    /// Input embeddings [batch, seq, hidden] (float) in place of input_ids: only in the scratch graph an export runs to
    /// compute a soft prompt's keys/values, never in an exported folder.
    /// </summary>
    public const string InputsEmbeds = "inputs_embeds";
    public const string AttentionMask = "attention_mask";
    public const string PositionIds = "position_ids";
    public const string NumLogitsToKeep = "num_logits_to_keep";

    /// <summary>
    /// Multi-adapter exports only (<see cref="AdapterManifest"/>): int64 [batch], per row the adapter's index in
    /// adapters.json, -1 (or the adapter count) for the base alone. An overridable initializer of one -1, so a caller that
    /// feeds nothing runs every row on the base.
    /// </summary>
    public const string AdapterIndex = "adapter_index";
    public const string Logits = "logits";

    public const string PastKeyPattern = "past_key_values.%d.key";
    public const string PastValuePattern = "past_key_values.%d.value";
    public const string PresentKeyPattern = "present.%d.key";
    public const string PresentValuePattern = "present.%d.value";

    public static string PastKey(int layer) => LayerPattern.Format(PastKeyPattern, layer);
    public static string PastValue(int layer) => LayerPattern.Format(PastValuePattern, layer);
    public static string PresentKey(int layer) => LayerPattern.Format(PresentKeyPattern, layer);
    public static string PresentValue(int layer) => LayerPattern.Format(PresentValuePattern, layer);

    /// <summary>
    /// The position_ids a caller feeds for <paramref name="attentionMask"/> [batch, total] and a step of
    /// <paramref name="seq"/> new tokens: per row cumsum(mask) - 1, positions where mask is 0 set to 1, the last
    /// <paramref name="seq"/> columns ([batch, seq] flattened), as transformers 4.33's prepare_inputs_for_generation.
    /// Without padding that is past .. past + seq - 1.
    /// </summary>
    public static long[] PositionIdsFromMask(ReadOnlySpan<long> attentionMask, int batch, int seq)
    {
        if (batch <= 0 || attentionMask.Length % batch != 0) throw new ArgumentException($"attention_mask of {attentionMask.Length} values is not [{batch}, total]");
        int total = attentionMask.Length / batch;
        if (seq > total) throw new ArgumentException($"{seq} new tokens but attention_mask covers only {total} positions");
        var result = new long[batch * seq];
        for (int b = 0; b < batch; b++)
        {
            long sum = 0;
            for (int t = 0; t < total; t++)
            {
                var m = attentionMask[b * total + t];
                sum += m;
                if (t >= total - seq) result[b * seq + t - (total - seq)] = m == 0 ? 1 : sum - 1;
            }
        }
        return result;
    }
}
