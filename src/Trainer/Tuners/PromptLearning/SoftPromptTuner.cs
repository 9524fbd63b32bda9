using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PromptLearning;

/// <summary>
/// Prompt tuning and p-tuning: the prompt rows are virtual token embeddings put in front of the input embeddings
/// (PEFT 0.7.1's PeftModelForCausalLM / PeftModelForSeq2SeqLM forward and generate for PROMPT_TUNING and P_TUNING).
/// Decoder-only: the logits keep the virtual positions, as PEFT returns them. Encoder-decoder: only the encoder
/// input gets the first num_virtual_tokens rows; the decoder, its mask and the labels are left alone.
/// </summary>
public abstract class SoftPromptTuner : PromptLearningTuner
{
    protected SoftPromptTuner(PretrainedModel model, PromptLearningConfig filledConfig) : base(model, filledConfig) =>
        PromptFit.Check(filledConfig, model.Architecture);

    /// <summary>Rows of the prompt: num_virtual_tokens * num_transformer_submodules.</summary>
    public int TotalVirtualTokens => PromptConfig.TotalVirtualTokens;

    protected override long[] SavedShape => [TotalVirtualTokens, PromptConfig.TokenDim!.Value];

    public override int PrependedTokens => Model is CausalLm ? NumVirtualTokens : 0;

    /// <summary>get_prompt(batch_size): [batch, total_virtual_tokens, token_dim].</summary>
    public Tensor Prompts(long batch) => PromptEmbeddings(batch);

    public override CausalLmInput PrepareCausal(CausalLmInput input)
    {
        var embeds = input.InputsEmbeds ?? Model.EmbedTokens(input.InputIds
            ?? throw new PeftOnnxException($"{PromptConfig.PeftType} forward: give input_ids or inputs_embeds"));
        long batch = embeds.shape[0];
        var prompts = Prompts(batch).to(embeds.device).to(embeds.dtype);
        Tensor? labels = null;
        if (input.Labels is { } l)
        {
            using var ignoreIndex = LmLoss.IgnoreIndex.ToScalar();
            var ignored = full(batch, NumVirtualTokens, ignoreIndex, dtype: l.dtype, device: l.device);
            labels = cat([ignored, l], 1);
        }
        return input with
        {
            InputIds = null,
            InputsEmbeds = cat([prompts, embeds], 1),
            AttentionMask = WithVirtualMask(input.AttentionMask),
            Labels = labels,
            PositionIds = null,
        };
    }

    public override Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input)
    {
        // The encoder already ran on the prompted input (generation reuses its states).
        if (input.EncoderHiddenStates is not null) return input;
        var embeds = input.InputsEmbeds ?? Model.EmbedTokens(input.InputIds
            ?? throw new PeftOnnxException($"{PromptConfig.PeftType} forward: give input_ids or inputs_embeds"));
        return input with
        {
            InputIds = null,
            InputsEmbeds = EncoderInputsEmbeds(embeds),
            AttentionMask = WithVirtualMask(input.AttentionMask),
        };
    }

    /// <summary>cat(prompts[:, :num_virtual_tokens], inputs_embeds): the encoder input of PEFT's seq2seq forward and generate.</summary>
    private Tensor EncoderInputsEmbeds(Tensor embeds)
    {
        var prompts = Prompts(embeds.shape[0])[.., ..NumVirtualTokens, ..].to(embeds.device).to(embeds.dtype);
        return cat([prompts, embeds], 1);
    }

    public override CausalLmInput PrepareCausalStep(CausalLmInput input)
    {
        if (input.PastKeyValues is { Length: > 0 })
            return input with { AttentionMask = WithVirtualMask(input.AttentionMask), PositionIds = null };
        return PrepareCausal(input with { Labels = null });
    }

    protected override Tensor GenerateSeq2Seq(Seq2SeqLm model, Tensor inputIds, Tensor? attentionMask, GreedyOptions options)
    {
        using var scope = NewDisposeScope();
        Tensor embeds, mask;
        using (no_grad())
        {
            embeds = EncoderInputsEmbeds(model.EmbedTokens(inputIds));
            mask = WithVirtualMask(attentionMask ?? ones_like(inputIds))!;
        }
        return GreedySearch.Generate(model, inputIds, mask, options, inputsEmbeds: embeds).MoveToOuterDisposeScope();
    }
}
