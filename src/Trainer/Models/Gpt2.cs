using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

/// <summary>
/// GPT2LMHeadModel as transformers 4.33 computes it (modeling_gpt2.py): token + learned position embeddings,
/// pre-LayerNorm blocks with fused c_attn, causal attention with an additive padding mask, tied lm_head.
/// Every linear (the Conv1D layers, already [out, in] after loading, and lm_head) runs through
/// <see cref="PretrainedModel.Linears"/> so PEFT adapters can wrap it.
/// </summary>
public sealed class Gpt2LmHeadModel : CausalLm
{
    private readonly Gpt2Config _config;
    private readonly Func<Tensor, Tensor> _activation;

    public Gpt2LmHeadModel(Gpt2Architecture architecture, ParameterStore parameters) : base(architecture, parameters)
    {
        _config = (Gpt2Config)architecture.Config;
        _activation = Activations.Get(_config.ActivationFunction);
    }

    private int NumHeads => _config.NHead;
    private int HeadDim => _config.NEmbd / _config.NHead;

    public override LmOutput Forward(CausalLmInput input)
    {
        using var scope = NewDisposeScope();
        var past = AttentionMasks.PastOrNull(input.PastKeyValues, _config.NLayer);
        long pastLength = past?.Length ?? 0;

        // GPT2Model.forward: inputs_embeds (given, e.g. by prompt tuning, or looked up from wte) + wpe(position_ids).
        var inputsEmbeds = TokenEmbeddings(input);
        long batch = inputsEmbeds.shape[0], length = inputsEmbeds.shape[1];
        var positionIds = input.PositionIds?.reshape(-1, length)
            ?? ScalarOperands.Arange(pastLength, pastLength + length, dtype: int64, device: inputsEmbeds.device).unsqueeze(0);
        var positionEmbeds = Lookup(Parameters["transformer.wpe.weight"], positionIds);
        var hidden = Dropout(inputsEmbeds.Plus(positionEmbeds), _config.EmbdPdrop);

        // The mask the blocks share: [1, 1, T, past+T] "may attend" (GPT2Attention's sliced bias buffer) and the
        // padding mask turned additive, (1 - mask) * finfo.min, broadcast over heads and queries.
        long keyLength = pastLength + length;
        var causal = ones(length, keyLength, dtype: @bool, device: hidden.device).tril(keyLength - length).view(1, 1, length, keyLength);
        Tensor? padding = null;
        if (input.AttentionMask is not null)
        {
            AttentionMasks.CheckMask(input.AttentionMask, batch, keyLength);
            var mask = input.AttentionMask.reshape(batch, 1, 1, -1).to(hidden.dtype);
            padding = mask.SubtractedFrom(1.0).Times(AttentionMasks.MinValue(hidden.dtype));
        }

        var presents = input.UseCache ? new KvCache() : null;
        for (int i = 0; i < _config.NLayer; i++)
        {
            using var layerScope = NewDisposeScope();
            var (output, key, value) = Block(i, hidden, past?.Self[i], causal, padding);
            hidden = output.MoveToOuterDisposeScope();
            if (presents is not null) presents.Self.Add((key.MoveToOuterDisposeScope(), value.MoveToOuterDisposeScope()));
        }

        hidden = LayerNorm(hidden, "transformer.ln_f");
        var logits = Linears.Forward("lm_head", hidden);
        var loss = input.Labels is null ? null : LmLoss.CausalShifted(logits, input.Labels);

        logits.MoveToOuterDisposeScope();
        loss?.MoveToOuterDisposeScope();
        presents?.MoveToOuterScope();
        return new LmOutput(logits, loss, presents);
    }

    /// <summary>GPT2Block: pre-norm attention and MLP, each added to the residual stream.</summary>
    private (Tensor Hidden, Tensor Key, Tensor Value) Block(int layer, Tensor hidden, (Tensor Key, Tensor Value)? past, Tensor causal, Tensor? padding)
    {
        var p = $"transformer.h.{layer}";
        var residual = hidden;
        var (attnOutput, key, value) = Attention(layer, LayerNorm(hidden, $"{p}.ln_1"), past, causal, padding);
        hidden = attnOutput.Plus(residual);

        residual = hidden;
        var feedForward = Mlp(layer, LayerNorm(hidden, $"{p}.ln_2"));
        return (residual.Plus(feedForward), key, value);
    }

    /// <summary>
    /// GPT2Attention: c_attn splits into q, k, v; the past is prepended to k and v (the present returned for the
    /// cache); scores scaled, causally masked with finfo.min, padding added, softmax, weighted sum, c_proj.
    /// </summary>
    private (Tensor Output, Tensor Key, Tensor Value) Attention(int layer, Tensor x, (Tensor Key, Tensor Value)? past, Tensor causal, Tensor? padding)
    {
        var p = $"transformer.h.{layer}.attn";
        var qkv = Linears.Forward($"{p}.c_attn", x).split(_config.NEmbd, 2);
        var query = SplitHeads(qkv[0]);
        var key = SplitHeads(qkv[1]);
        var value = SplitHeads(qkv[2]);
        if (past is { } cached)
        {
            key = cat([cached.Key, key], 2);
            value = cat([cached.Value, value], 2);
        }

        // _attn (and _upcast_and_reordered_attn, which computes the same in float32, as we always do).
        var weights = query.matmul(key.transpose(-1, -2));
        if (_config.ScaleAttnWeights) weights = weights.Over(Math.Sqrt(HeadDim));
        if (_config.ScaleAttnByInverseLayerIdx) weights = weights.Over((double)(layer + 1));
        weights = weights.MaskedFill(causal.logical_not(), AttentionMasks.MinValue(weights.dtype));
        if (padding is not null) weights = weights.Plus(padding);
        weights = nn.functional.softmax(weights, -1);
        weights = Dropout(weights, _config.AttnPdrop);

        var output = MergeHeads(weights.matmul(value));
        output = Linears.Forward($"{p}.c_proj", output);
        return (Dropout(output, _config.ResidPdrop), key, value);
    }

    /// <summary>GPT2MLP: c_fc, activation_function, c_proj, dropout.</summary>
    private Tensor Mlp(int layer, Tensor x)
    {
        var p = $"transformer.h.{layer}.mlp";
        var h = _activation(Linears.Forward($"{p}.c_fc", x));
        return Dropout(Linears.Forward($"{p}.c_proj", h), _config.ResidPdrop);
    }

    /// <summary>[B, T, n_embd] -> [B, heads, T, head_dim].</summary>
    private Tensor SplitHeads(Tensor x) => x.view(x.shape[0], x.shape[1], NumHeads, HeadDim).permute(0, 2, 1, 3);

    /// <summary>[B, heads, T, head_dim] -> [B, T, n_embd].</summary>
    private Tensor MergeHeads(Tensor x) => x.permute(0, 2, 1, 3).contiguous().view(x.shape[0], x.shape[2], NumHeads * HeadDim);

    private Tensor LayerNorm(Tensor x, string path) =>
        nn.functional.layer_norm(x, [_config.NEmbd], Parameters[$"{path}.weight"], Parameters[$"{path}.bias"], _config.LayerNormEpsilon);

    private Tensor TokenEmbeddings(CausalLmInput input)
    {
        if ((input.InputIds is null) == (input.InputsEmbeds is null))
            throw new PeftOnnxException("GPT-2 forward: give exactly one of input_ids and inputs_embeds");
        return input.InputsEmbeds ?? EmbedTokens(input.InputIds!);
    }

    /// <summary>An nn.Embedding lookup: rows of <paramref name="table"/> for every id, shaped [.. ids, dim].</summary>
    private static Tensor Lookup(Tensor table, Tensor ids) =>
        table.index_select(0, ids.reshape(-1)).reshape([.. ids.shape, table.shape[1]]);
}
