using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Xunit;

namespace Peft.Onnx.Tests.Models;

/// <summary>
/// The fixture base model of a decoder-only architecture that reads position_ids (GPT-2 learned positions, LLaMA RoPE):
/// the KV cache, left padding with positions from the mask, greedy search, inputs_embeds, a foreign past, the loss.
/// </summary>
public abstract class PositionIdsCausalLmTests(string arch, string firstLayerWeight)
{
    protected CausalLm LoadFixture() => CausalLmChecks.LoadFixture(arch);

    [Fact]
    public void Cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        CausalLmChecks.CachedStepsMatchFullForward(model);
    }

    [Fact]
    public void Left_padded_rows_with_positions_from_the_mask_match_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.LeftPaddingMatchesRowsAlone(model);
    }

    [Fact]
    public void Left_padded_cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        CausalLmChecks.LeftPaddedCachedStepsMatchFullForward(model);
    }

    [Fact]
    public void Batched_left_padded_greedy_matches_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.BatchedGreedyMatchesRowsAlone(model);
    }

    /// <summary>GPT-2 still adds its position embeddings to the given embeddings.</summary>
    [Fact]
    public void Inputs_embeds_replace_the_token_lookup()
    {
        using var model = LoadFixture();
        CausalLmChecks.InputsEmbedsMatchInputIds(model);
    }

    [Fact]
    public void A_foreign_past_as_prefix_tuning_passes_it_works_in_one_call_or_token_by_token()
    {
        using var model = LoadFixture();
        CausalLmChecks.ForeignPastIsConsistent(model);
    }

    [Fact]
    public void Loss_backpropagates_to_the_first_layer()
    {
        using var model = LoadFixture();
        CausalLmChecks.LossBackpropagates(model, firstLayerWeight);
    }
}

/// <summary>
/// The fixture base model of a decoder-only architecture that derives positions from the mask (BLOOM ALiBi, OPT):
/// left padding, the KV cache, greedy search, inputs_embeds, on prompts with ids &lt; 100.
/// </summary>
public abstract class MaskPositionedCausalLmTests(string arch)
{
    protected CausalLm LoadFixture() => CausalLmChecks.LoadFixture(arch);

    [Fact]
    public void Left_padded_rows_match_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.LeftPaddingMatchesRowsAlone(model, CausalLmChecks.SmallVocabPrompts);
    }

    [Fact]
    public void Cached_steps_match_the_full_forward()
    {
        using var model = LoadFixture();
        CausalLmChecks.LeftPaddedCachedStepsMatchFullForward(model, model.Config.Dimensions.NumHeads, model.Config.Dimensions.HeadDim);
    }

    [Fact]
    public void Batched_left_padded_greedy_matches_each_row_alone()
    {
        using var model = LoadFixture();
        CausalLmChecks.BatchedGreedyMatchesRowsAlone(model, CausalLmChecks.SmallVocabPrompts, newTokens: 6);
    }

    [Fact]
    public void Inputs_embeds_replace_the_token_lookup()
    {
        using var model = LoadFixture();
        CausalLmChecks.InputsEmbedsMatchInputIds(model, CausalLmChecks.SmallVocabPrompts);
    }
}
