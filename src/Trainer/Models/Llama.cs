using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

/// <summary>
/// LlamaForCausalLM as transformers 4.33 computes it (modeling_llama.py): token embeddings, pre-RMSNorm decoder
/// layers with rotary position embeddings and grouped-query attention, SwiGLU MLP, final RMSNorm, lm_head.
/// Every linear runs through <see cref="PretrainedModel.Linears"/> so PEFT adapters can wrap it.
/// </summary>
public sealed class LlamaForCausalLM : CausalLm
{
    private readonly LlamaConfig _config;
    private readonly Func<Tensor, Tensor> _activation;

    public LlamaForCausalLM(LlamaArchitecture architecture, ParameterStore parameters) : base(architecture, parameters)
    {
        _config = (LlamaConfig)architecture.Config;
        _activation = Activations.Get(_config.HiddenAct);
    }

    private int NumHeads => _config.NumAttentionHeads;
    private int NumKeyValueHeads => _config.KeyValueHeads;
    private int HeadDim => _config.HiddenSize / _config.NumAttentionHeads;

    public override LmOutput Forward(CausalLmInput input)
    {
        using var scope = NewDisposeScope();
        var past = AttentionMasks.PastOrNull(input.PastKeyValues, _config.NumHiddenLayers);
        long pastLength = past?.Length ?? 0;

        // LlamaModel.forward: inputs_embeds given (prompt tuning) or looked up; no position table, positions go to RoPE.
        if ((input.InputIds is null) == (input.InputsEmbeds is null))
            throw new PeftOnnxException("LLaMA forward: give exactly one of input_ids and inputs_embeds");
        var hidden = input.InputsEmbeds ?? EmbedTokens(input.InputIds!);
        long batch = hidden.shape[0], length = hidden.shape[1];
        var positionIds = input.PositionIds?.reshape(-1, length).to(int64)
            ?? ScalarOperands.Arange(pastLength, pastLength + length, dtype: int64, device: hidden.device).unsqueeze(0);
        var (cos, sin) = Rope(positionIds, hidden.dtype);
        var mask = AttentionMasks.Decoder(input.AttentionMask, batch, length, pastLength, hidden.dtype, hidden.device);

        var presents = input.UseCache ? new KvCache() : null;
        for (int i = 0; i < _config.NumHiddenLayers; i++)
        {
            using var layerScope = NewDisposeScope();
            var (output, key, value) = DecoderLayer(i, hidden, past?.Self[i], cos, sin, mask);
            hidden = output.MoveToOuterDisposeScope();
            if (presents is not null) presents.Self.Add((key.MoveToOuterDisposeScope(), value.MoveToOuterDisposeScope()));
        }

        hidden = RmsNorm(hidden, "model.norm");
        var logits = Linears.Forward("lm_head", hidden).to(float32);
        var loss = input.Labels is null ? null : LmLoss.CausalShifted(logits, input.Labels);

        logits.MoveToOuterDisposeScope();
        loss?.MoveToOuterDisposeScope();
        presents?.MoveToOuterScope();
        return new LmOutput(logits, loss, presents);
    }

    /// <summary>LlamaDecoderLayer: RMSNorm, self-attention, residual; RMSNorm, MLP, residual.</summary>
    private (Tensor Hidden, Tensor Key, Tensor Value) DecoderLayer(int layer, Tensor hidden, (Tensor Key, Tensor Value)? past,
        Tensor cos, Tensor sin, Tensor? mask)
    {
        var p = $"model.layers.{layer}";
        var residual = hidden;
        var (attnOutput, key, value) = Attention(layer, RmsNorm(hidden, $"{p}.input_layernorm"), past, cos, sin, mask);
        hidden = residual.Plus(attnOutput);

        residual = hidden;
        return (residual.Plus(Mlp(layer, RmsNorm(hidden, $"{p}.post_attention_layernorm"))), key, value);
    }

    /// <summary>
    /// LlamaAttention: project, rotate q and k by their positions, prepend the past, repeat the kv heads for
    /// grouped-query attention (the cache keeps them un-repeated), scaled scores + mask, softmax in float32, o_proj.
    /// </summary>
    private (Tensor Output, Tensor Key, Tensor Value) Attention(int layer, Tensor x, (Tensor Key, Tensor Value)? past,
        Tensor cos, Tensor sin, Tensor? mask)
    {
        var p = $"model.layers.{layer}.self_attn";
        long batch = x.shape[0], length = x.shape[1];
        var query = Linears.Forward($"{p}.q_proj", x).view(batch, length, NumHeads, HeadDim).transpose(1, 2);
        var key = Linears.Forward($"{p}.k_proj", x).view(batch, length, NumKeyValueHeads, HeadDim).transpose(1, 2);
        var value = Linears.Forward($"{p}.v_proj", x).view(batch, length, NumKeyValueHeads, HeadDim).transpose(1, 2);

        query = ApplyRotary(query, cos, sin);
        key = ApplyRotary(key, cos, sin);
        if (past is { } cached)
        {
            key = cat([cached.Key, key], 2);
            value = cat([cached.Value, value], 2);
        }

        var groups = NumHeads / NumKeyValueHeads;
        var weights = query.matmul(RepeatKv(key, groups).transpose(2, 3)).Over(Math.Sqrt(HeadDim));
        if (mask is not null) weights = weights.Plus(mask);
        weights = nn.functional.softmax(weights, -1, float32).to(query.dtype);

        var output = weights.matmul(RepeatKv(value, groups)).transpose(1, 2).contiguous().reshape(batch, length, NumHeads * HeadDim);
        return (Linears.Forward($"{p}.o_proj", output), key, value);
    }

    /// <summary>LlamaMLP (SwiGLU): down_proj(act(gate_proj(x)) * up_proj(x)).</summary>
    private Tensor Mlp(int layer, Tensor x)
    {
        var p = $"model.layers.{layer}.mlp";
        var gated = _activation(Linears.Forward($"{p}.gate_proj", x)) * Linears.Forward($"{p}.up_proj", x);
        return Linears.Forward($"{p}.down_proj", gated);
    }

    /// <summary>LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) in float32, back to the input dtype, times the weight.</summary>
    private Tensor RmsNorm(Tensor x, string path)
    {
        var inputDtype = x.dtype;
        var h = x.to(float32);
        var variance = h.Pow(2).mean([-1], keepdim: true);
        h = h * rsqrt(variance.Plus(_config.RmsNormEps));
        return Parameters[$"{path}.weight"] * h.to(inputDtype);
    }

    /// <summary>
    /// LlamaRotaryEmbedding for the given positions: inv_freq = 1 / theta^(2i/d), angles = position * inv_freq
    /// (float32, as the cached table is built), emb = cat(freqs, freqs); cos/sin shaped [B|1, 1, T, head_dim].
    /// Computing them from the position ids directly equals indexing transformers' cos_cached table.
    /// </summary>
    private (Tensor Cos, Tensor Sin) Rope(Tensor positionIds, ScalarType dtype)
    {
        var device = positionIds.device;
        var exponents = ScalarOperands.Arange(0, HeadDim, 2, dtype: int64, device: device).to(float32).Over(HeadDim);
        var invFreq = pow(tensor(_config.RopeTheta, float32, device), exponents).DividedInto(1.0);
        var freqs = positionIds.to(float32).unsqueeze(-1) * invFreq;
        var emb = cat([freqs, freqs], -1).unsqueeze(1);
        return (emb.cos().to(dtype), emb.sin().to(dtype));
    }

    /// <summary>apply_rotary_pos_emb for one of q, k: x * cos + rotate_half(x) * sin.</summary>
    private static Tensor ApplyRotary(Tensor x, Tensor cos, Tensor sin) => (x * cos).Plus(RotateHalf(x) * sin);

    /// <summary>rotate_half: (x1, x2) -> (-x2, x1) over the two halves of the last dimension.</summary>
    private static Tensor RotateHalf(Tensor x)
    {
        var half = (int)(x.shape[^1] / 2);
        return cat([-x[.., .., .., half..], x[.., .., .., ..half]], -1);
    }

    /// <summary>repeat_kv: [B, kv_heads, S, d] -> [B, kv_heads * groups, S, d], each kv head repeated for its group of query heads.</summary>
    private static Tensor RepeatKv(Tensor x, int groups)
    {
        if (groups == 1) return x;
        long b = x.shape[0], kv = x.shape[1], s = x.shape[2], d = x.shape[3];
        return x.unsqueeze(2).expand(b, kv, groups, s, d).reshape(b, kv * groups, s, d);
    }
}
