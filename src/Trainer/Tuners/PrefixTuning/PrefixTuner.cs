using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PrefixTuning;

/// <summary>
/// Prefix tuning: per-layer key/value prefixes handed to the model as past_key_values (PEFT 0.7.1's get_prompt for
/// PREFIX_TUNING). The rows [num_virtual_tokens, num_layers * 2 * token_dim] are viewed as
/// [B, nv, num_layers * 2, heads, token_dim / heads], doubled along the layer axis for encoder-decoders
/// (num_transformer_submodules 2), permuted to [num_layers * 2 (* 2), B, heads, nv, head_dim] and split into groups
/// of 2 * num_transformer_submodules: decoder-only layer i gets rows (2i, 2i + 1); an encoder-decoder's decoder
/// layer i gets rows 4i..4i+3 as (self k, self v, cross k, cross v) of the doubled list (the encoder gets none);
/// under <see cref="PrefixLayout.KeysFirstRegrouped"/> layer i takes its key from row i (regrouped as PEFT's transpose(2, 3) + reshape does) and its
/// value from row num_layers + i.
/// Under grouped-query attention the prefix has the key/value heads (newer PEFT's rule: token_dim becomes
/// token_dim / num_attention_heads * num_key_value_heads, num_attention_heads becomes num_key_value_heads).
/// </summary>
public sealed class PrefixTuner : PromptLearningTuner
{
    public PrefixTuner(PretrainedModel model, PrefixTuningConfig config) : base(model, Prepare(model, config))
    {
        var c = (PrefixTuningConfig)PromptConfig;
        PromptFit.Check(c, model.Architecture);
        Attach(c.PrefixProjection ? new PrefixEncoder(c) : EmbeddingTable.Random(NumVirtualTokens, KeyValueWidth));
    }

    private PrefixTuningConfig Prefix => (PrefixTuningConfig)PromptConfig;

    /// <summary>num_layers * 2 * token_dim: one row's worth of keys and values.</summary>
    private long KeyValueWidth => (long)Prefix.NumLayers!.Value * 2 * Prefix.TokenDim!.Value;

    protected override long[] SavedShape => [NumVirtualTokens, KeyValueWidth];

    public override int PrependedTokens => 0;

    private static PrefixTuningConfig Prepare(PretrainedModel model, PrefixTuningConfig config) => config.WithModelDefaults(model.Config);

    /// <summary>get_prompt(batch_size) for prefix tuning, in the one cache layout every family here reads.</summary>
    public KvCache PastKeyValues(long batch, Device? device = null)
    {
        var c = Prefix;
        int layers = c.NumLayers!.Value, heads = c.NumAttentionHeads!.Value, sub = c.NumTransformerSubmodules!.Value;
        long headDim = c.TokenDim!.Value / heads;
        var flat = PromptEmbeddings(batch);
        if (device is not null) flat = flat.to(device);
        var kv = flat.reshape(batch, NumVirtualTokens, layers * 2, heads, headDim);
        if (sub == 2) kv = cat([kv, kv], 2);
        var rows = kv.permute(2, 0, 3, 1, 4);   // [layers * 2 * sub, B, heads, nv, head_dim]
        long count = rows.shape[0];
        var cache = new KvCache();
        if (Model.Config.Family.PrefixLayout == PrefixLayout.KeysFirstRegrouped)
        {
            // PEFT's postprocess for this layout (bloom_model_postprocess_past_key_value): keys = rows[:L].transpose(2, 3).reshape(L, B * heads, head_dim, nv).
            // The transpose swaps heads and tokens (not tokens and head_dim), so the reshape regroups the values; the
            // model reads the result as [B * heads, head_dim, nv]. Reproduced here, then turned into the [B, heads, nv, head_dim] layout.
            for (long i = 0; i < count / 2; i++)
            {
                var key = rows[i].transpose(1, 2).reshape(batch, heads, headDim, NumVirtualTokens).transpose(2, 3);
                cache.Self.Add((key, rows[count / 2 + i]));
            }
        }
        else if (sub == 2)
        {
            // transformers zips the decoder blocks with these groups: groups past the decoder's layer count are unused.
            long groups = Math.Min(count / 4, Model.Config.Dimensions.NumDecoderLayers);
            for (long g = 0; g < groups; g++)
            {
                cache.Self.Add((rows[4 * g], rows[4 * g + 1]));
                cache.Cross.Add((rows[4 * g + 2], rows[4 * g + 3]));
            }
        }
        else
        {
            for (long i = 0; i < count / 2; i++) cache.Self.Add((rows[2 * i], rows[2 * i + 1]));
        }
        return cache;
    }

    public override CausalLmInput PrepareCausal(CausalLmInput input)
    {
        long batch = BatchSize(input.InputIds, input.InputsEmbeds, "PREFIX_TUNING forward");
        return input with
        {
            AttentionMask = WithVirtualMask(input.AttentionMask),
            PastKeyValues = PastKeyValues(batch, (input.InputIds ?? input.InputsEmbeds)?.device),
            PositionIds = null,
        };
    }

    public override CausalLmInput PrepareCausalStep(CausalLmInput input) =>
        input.PastKeyValues is { Length: > 0 }
            ? input with { AttentionMask = WithVirtualMask(input.AttentionMask), PositionIds = null }
            : PrepareCausal(input with { Labels = null });

    public override Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input)
    {
        long batch = input.InputIds?.shape[0] ?? input.InputsEmbeds?.shape[0] ?? input.EncoderHiddenStates?.shape[0]
            ?? throw new PeftOnnxException("PREFIX_TUNING forward: give input_ids or inputs_embeds");
        return input with
        {
            PastKeyValues = PastKeyValues(batch, (input.InputIds ?? input.InputsEmbeds ?? input.EncoderHiddenStates)?.device),
            DecoderAttentionMask = WithVirtualMask(input.DecoderAttentionMask),
        };
    }

    protected override Tensor GenerateSeq2Seq(Seq2SeqLm model, Tensor inputIds, Tensor? attentionMask, GreedyOptions options) =>
        GreedySearch.Generate(model, inputIds, attentionMask, options, input => model.Forward(
            input.PastKeyValues is { Length: > 0 } ? input : input with { PastKeyValues = PastKeyValues(input.DecoderInputIds?.shape[0] ?? inputIds.shape[0], inputIds.device) }));
}
