using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

/// <summary>
/// OPTForCausalLM as transformers 4.33 computes it: embed_tokens (-> project_in) + learned positions
/// -> decoder layers (pre-LN, or post-LN for opt-350m) -> final_layer_norm -> (project_out) -> lm_head.
/// Positions come from the attention mask over past + current tokens (cumsum), so left padding and
/// past/prefix tokens are accounted for by the mask alone.
/// </summary>
public sealed class OptForCausalLM(OptArchitecture architecture, ParameterStore parameters) : CausalLm(architecture, parameters)
{
    private readonly OptArchitecture _arch = architecture;
    private OptConfig Opt => _arch.Opt;
    private int Heads => Opt.NumAttentionHeads;
    private int HeadDim => Opt.HiddenSize / Opt.NumAttentionHeads;

    public override LmOutput Forward(CausalLmInput input)
    {
        // Temporaries die here; the outputs are moved to the caller's scope at the end.
        using var scope = NewDisposeScope();
        // inputs_embeds (PEFT's prompt tuning) are word_embed_proj_dim wide: they enter before project_in.
        var embeds = input.InputsEmbeds ?? EmbedTokens(input.InputIds
            ?? throw new PeftOnnxException("OPT forward needs input_ids or inputs_embeds"));
        long batch = embeds.shape[0], length = embeds.shape[1];
        long past = input.PastKeyValues?.Length ?? 0;
        if (past + length > Opt.MaxPositionEmbeddings)
            throw new PeftOnnxException($"OPT sequence of {past + length} tokens (past {past} + current {length}) exceeds max_position_embeddings = {Opt.MaxPositionEmbeddings}");

        var mask = input.AttentionMask?.to(int64) ?? ones(batch, past + length, dtype: int64, device: embeds.device);
        if (mask.shape[0] != batch || mask.shape[1] != past + length)
            throw new PeftOnnxException($"attention_mask has shape [{string.Join(", ", mask.shape)}], expected [{batch}, {past + length}] (past {past} + current {length} tokens)");
        var additiveMask = AttentionMasks.Decoder(mask, mask.shape[0], length, past, embeds.dtype, mask.device)!;
        var positions = EmbedPositions(mask, past);

        if (_arch.HasProjections) embeds = Linears.Forward("model.decoder.project_in", embeds);
        var hidden = embeds.Plus(positions);

        var presents = input.UseCache ? new KvCache() : null;
        for (int i = 0; i < Opt.NumHiddenLayers; i++)
        {
            // LayerDrop (training only). Skipping a layer would misalign a cache, so it is off when one is built.
            if (Training && presents is null && Opt.Layerdrop > 0 && rand(1).item<float>() < Opt.Layerdrop) continue;
            var layerPast = input.PastKeyValues is { } cache ? cache.Self[i] : ((Tensor, Tensor)?)null;
            hidden = DecoderLayer(i, hidden, additiveMask, layerPast, presents);
        }
        if (_arch.HasFinalLayerNorm) hidden = LayerNorm(hidden, "model.decoder.final_layer_norm");
        if (_arch.HasProjections) hidden = Linears.Forward("model.decoder.project_out", hidden);

        var logits = Linears.Forward("lm_head", hidden);
        var loss = input.Labels is null ? null : LmLoss.CausalShifted(logits, input.Labels);

        logits.MoveToOuterDisposeScope();
        loss?.MoveToOuterDisposeScope();
        presents?.MoveToOuterScope();
        return new LmOutput(logits, loss, presents);
    }

    /// <summary>
    /// OPTDecoderLayer: residual blocks around attention and the feed-forward; the LayerNorms go before
    /// each block (do_layer_norm_before, 125m/1.3b/...) or after the residual add (350m).
    /// </summary>
    private Tensor DecoderLayer(int i, Tensor hidden, Tensor mask, (Tensor Key, Tensor Value)? past, KvCache? presents)
    {
        var p = $"model.decoder.layers.{i}";
        var pre = Opt.DoLayerNormBefore;

        var residual = hidden;
        if (pre) hidden = LayerNorm(hidden, $"{p}.self_attn_layer_norm");
        hidden = Attention(p, hidden, mask, past, presents);
        hidden = residual.Plus(Dropout(hidden, Opt.Dropout));
        if (!pre) hidden = LayerNorm(hidden, $"{p}.self_attn_layer_norm");

        residual = hidden;
        if (pre) hidden = LayerNorm(hidden, $"{p}.final_layer_norm");
        hidden = Linears.Forward($"{p}.fc1", hidden);
        hidden = Activations.Get(Opt.ActivationFunction)(hidden);
        hidden = Linears.Forward($"{p}.fc2", hidden);
        hidden = residual.Plus(Dropout(hidden, Opt.Dropout));
        if (!pre) hidden = LayerNorm(hidden, $"{p}.final_layer_norm");
        return hidden;
    }

    /// <summary>
    /// OPTAttention: q is scaled by head_dim^-0.5 before the product; the additive mask is added and the
    /// result clamped at finfo.min (two finfo.min summed would be -inf); softmax upcast only for fp16.
    /// </summary>
    private Tensor Attention(string p, Tensor x, Tensor mask, (Tensor Key, Tensor Value)? past, KvCache? presents)
    {
        long batch = x.shape[0], length = x.shape[1];
        var query = SplitHeads(Linears.Forward($"{p}.self_attn.q_proj", x).Times(Math.Pow(HeadDim, -0.5)), batch);
        var key = SplitHeads(Linears.Forward($"{p}.self_attn.k_proj", x), batch);
        var value = SplitHeads(Linears.Forward($"{p}.self_attn.v_proj", x), batch);
        if (past is { } kv)
        {
            key = cat([kv.Key, key], 2);
            value = cat([kv.Value, value], 2);
        }
        presents?.Self.Add((key, value));

        var scores = matmul(query, key.transpose(-1, -2)).Plus(mask);   // [B, heads, T, S]
        using (var floor = finfo(scores.dtype).min.ToScalar()) scores = scores.clamp_min(floor);
        var probs = scores.dtype == ScalarType.Float16
            ? nn.functional.softmax(scores, -1, ScalarType.Float32).to(ScalarType.Float16)
            : nn.functional.softmax(scores, -1);
        probs = Dropout(probs, Opt.AttentionDropout);

        var context = matmul(probs, value).transpose(1, 2).reshape(batch, length, Opt.HiddenSize);
        return Linears.Forward($"{p}.self_attn.out_proj", context);
    }

    /// <summary>[B, T, hidden] -> [B, heads, T, head_dim] (OPTAttention._shape), the cache layout.</summary>
    private Tensor SplitHeads(Tensor x, long batch) => x.view(batch, -1, Heads, HeadDim).transpose(1, 2);

    /// <summary>
    /// OPTLearnedPositionalEmbedding: position = cumsum(mask) * mask - 1 (pads get -1), only the current
    /// tokens' slice, shifted by the offset of 2.
    /// </summary>
    private Tensor EmbedPositions(Tensor mask, long past)
    {
        var positions = (mask.cumsum(1) * mask).Minus(1);
        positions = positions[.., (int)past..].Plus(OptArchitecture.PositionOffset);
        var table = Parameters["model.decoder.embed_positions.weight"];
        return table.index_select(0, positions.reshape(-1)).reshape(positions.shape[0], positions.shape[1], table.shape[1]);
    }

    private Tensor LayerNorm(Tensor x, string path) =>
        nn.functional.layer_norm(x, [x.shape[^1]], Parameters.TryGet(path + ".weight"), Parameters.TryGet(path + ".bias"), OptArchitecture.LayerNormEpsilon);
}
