using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

/// <summary>
/// BloomForCausalLM as transformers 4.33 computes it: embeddings -> word_embeddings_layernorm -> blocks
/// (ALiBi attention with a fused query_key_value, GELU-tanh MLP) -> ln_f -> lm_head.
/// Positions exist only through ALiBi, which is built from the attention mask over past + current tokens,
/// so left padding and past/prefix tokens shift nothing as long as the mask covers them.
/// </summary>
public sealed class BloomForCausalLM(BloomArchitecture architecture, ParameterStore parameters) : CausalLm(architecture, parameters)
{
    private BloomConfig Bloom => (BloomConfig)Config;
    private int Heads => Bloom.NHead;
    private int HeadDim => Bloom.Width / Bloom.NHead;

    public override LmOutput Forward(CausalLmInput input)
    {
        // Temporaries die here; the outputs are moved to the caller's scope at the end.
        using var scope = NewDisposeScope();
        var embeds = input.InputsEmbeds ?? EmbedTokens(input.InputIds
            ?? throw new PeftOnnxException("BLOOM forward needs input_ids or inputs_embeds"));
        long batch = embeds.shape[0], length = embeds.shape[1];
        long past = input.PastKeyValues?.Length ?? 0;

        // inputs_embeds (PEFT's prompt tuning) enter before the embedding LayerNorm, as in BloomModel.forward.
        var hidden = LayerNorm(embeds, "transformer.word_embeddings_layernorm");

        var mask = input.AttentionMask?.to(int64) ?? ones(batch, past + length, dtype: int64, device: hidden.device);
        if (mask.shape[0] != batch || mask.shape[1] != past + length)
            throw new PeftOnnxException($"attention_mask has shape [{string.Join(", ", mask.shape)}], expected [{batch}, {past + length}] (past {past} + current {length} tokens)");
        var alibi = BuildAlibi(mask, Heads).to(hidden.dtype);
        var blocked = BlockedPositions(mask, length, past);

        var presents = input.UseCache ? new KvCache() : null;
        for (int i = 0; i < Bloom.NLayer; i++)
        {
            var layerPast = input.PastKeyValues is { } cache ? cache.Self[i] : ((Tensor, Tensor)?)null;
            hidden = Block(i, hidden, alibi, blocked, layerPast, presents);
        }
        hidden = LayerNorm(hidden, "transformer.ln_f");
        var logits = Linears.Forward("lm_head", hidden);
        var loss = input.Labels is null ? null : LmLoss.CausalShifted(logits, input.Labels);

        logits.MoveToOuterDisposeScope();
        loss?.MoveToOuterDisposeScope();
        presents?.MoveToOuterScope();
        return new LmOutput(logits, loss, presents);
    }

    /// <summary>BloomBlock: LN -> attention (+ residual) -> LN -> MLP (+ residual).</summary>
    private Tensor Block(int i, Tensor hidden, Tensor alibi, Tensor blocked, (Tensor Key, Tensor Value)? past, KvCache? presents)
    {
        var p = $"transformer.h.{i}";
        var postLayerNormResidual = Bloom.ApplyResidualConnectionPostLayernorm;

        var normed = LayerNorm(hidden, $"{p}.input_layernorm");
        var residual = postLayerNormResidual ? normed : hidden;
        var attention = Attention(p, normed, residual, alibi, blocked, past, presents);

        normed = LayerNorm(attention, $"{p}.post_attention_layernorm");
        residual = postLayerNormResidual ? normed : attention;
        return Mlp(p, normed, residual);
    }

    /// <summary>
    /// BloomAttention: the fused projection is laid out [B, T, heads, 3, head_dim]; scores are
    /// alibi + (q · kᵀ) / sqrt(head_dim) (transformers' baddbmm), masked with finfo.min, softmaxed in float32.
    /// Returns residual + dropout(dense(context)).
    /// </summary>
    private Tensor Attention(string p, Tensor x, Tensor residual, Tensor alibi, Tensor blocked,
        (Tensor Key, Tensor Value)? past, KvCache? presents)
    {
        long batch = x.shape[0], length = x.shape[1];
        var fused = Linears.Forward($"{p}.self_attention.query_key_value", x).view(batch, length, Heads, 3, HeadDim);
        // [B, T, heads, head_dim] -> [B, heads, T, head_dim], the cache layout.
        var query = fused.select(3, 0).transpose(1, 2);
        var key = fused.select(3, 1).transpose(1, 2);
        var value = fused.select(3, 2).transpose(1, 2);
        if (past is { } kv)
        {
            key = cat([kv.Key, key], 2);
            value = cat([kv.Value, value], 2);
        }
        presents?.Self.Add((key, value));
        long total = key.shape[2];

        var q = query.reshape(batch * Heads, length, HeadDim);
        var kT = key.reshape(batch * Heads, total, HeadDim).transpose(1, 2);
        // alibi.baddbmm(q, kT, beta: 1, alpha: 1/sqrt(head_dim)) spelled out: TorchSharp 0.107's baddbmm hands its
        // operands to libtorch in the wrong order (it computes batch2 + self @ batch1).
        var scores = bmm(q, kT).Times(1.0 / Math.Sqrt(HeadDim)).Plus(alibi).view(batch, Heads, length, total);
        var inputType = scores.dtype;
        if (inputType == ScalarType.Float16) scores = scores.to(float32);
        scores = scores.MaskedFill(blocked, finfo(scores.dtype).min);
        var probs = nn.functional.softmax(scores, -1, ScalarType.Float32).to(inputType);
        probs = Dropout(probs, Bloom.AttentionDropout);

        var context = matmul(probs, value)                      // [B, heads, T, head_dim]
            .transpose(1, 2).reshape(batch, length, Heads * HeadDim); // _merge_heads
        // pretraining_tp > 1 with slow_but_exact only re-associates the same sum; one dense is what 4.33 runs otherwise.
        var output = Linears.Forward($"{p}.self_attention.dense", context);
        return residual.Plus(Dropout(output, Bloom.HiddenDropout));
    }

    /// <summary>BloomMLP: dense_h_to_4h -> bloom_gelu -> dense_4h_to_h, then dropout + residual.</summary>
    private Tensor Mlp(string p, Tensor x, Tensor residual)
    {
        var h = BloomGelu(Linears.Forward($"{p}.mlp.dense_h_to_4h", x));
        var output = Linears.Forward($"{p}.mlp.dense_4h_to_h", h);
        return residual.Plus(Dropout(output, Bloom.HiddenDropout));
    }

    /// <summary>bloom_gelu_forward: the tanh approximation with BLOOM's own rounded constants, in its operation order.</summary>
    private static Tensor BloomGelu(Tensor x) =>
        x.Times(0.5) * tanh(x.Times(0.79788456) * (x.Times(0.044715) * x).Plus(1)).Plus(1.0);

    private Tensor LayerNorm(Tensor x, string path) =>
        nn.functional.layer_norm(x, [x.shape[^1]], Parameters[path + ".weight"], Parameters[path + ".bias"], Bloom.LayerNormEpsilon);

    /// <summary>
    /// build_alibi_tensor: per-head slopes (geometric for the largest power of two of heads, then every other
    /// slope of the next power of two) times each key's position, where positions count only attended tokens
    /// ((cumsum(mask) - 1) * mask). Returns [B * heads, 1, S] float32.
    /// </summary>
    public static Tensor BuildAlibi(Tensor attentionMask, int heads)
    {
        using var scope = NewDisposeScope();
        long batch = attentionMask.shape[0], length = attentionMask.shape[1];
        var device = attentionMask.device;
        int closest = 1 << (int)Math.Floor(Math.Log2(heads));
        var basis = tensor(Math.Pow(2, -Math.Pow(2, -(Math.Log2(closest) - 3))), float32, device);
        var slopes = pow(basis, ScalarOperands.Arange(1, 1 + closest, dtype: int32, device: device));
        if (closest != heads)
        {
            var extraBasis = tensor(Math.Pow(2, -Math.Pow(2, -(Math.Log2(2 * closest) - 3))), float32, device);
            int remaining = Math.Min(closest, heads - closest);
            var extraPowers = ScalarOperands.Arange(1, 1 + 2 * remaining, 2, int32, device);
            slopes = cat([slopes, pow(extraBasis, extraPowers)], 0);
        }
        var mask = attentionMask.to(int64);
        var positions = (mask.cumsum(-1).Minus(1) * mask).unsqueeze(1);   // [B, 1, S]
        var alibi = slopes.unsqueeze(-1) * positions;                   // [B, heads, S]
        return alibi.reshape(batch * heads, 1, length).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// True where a query must not look ([B, 1, T, past + T]): padded keys, and (when more than one token is fed)
    /// keys after the query. Past keys are never "future".
    /// </summary>
    private static Tensor BlockedPositions(Tensor mask, long length, long past)
    {
        long total = past + length;
        var padding = mask.Equal(0).view(mask.shape[0], 1, 1, total);
        if (length == 1) return padding;
        var queryPositions = ScalarOperands.Arange(past, total, device: mask.device).view(length, 1);
        var keyPositions = ScalarOperands.Arange(0, total, device: mask.device).view(1, total);
        return padding.logical_or(keyPositions.gt(queryPositions));
    }
}
