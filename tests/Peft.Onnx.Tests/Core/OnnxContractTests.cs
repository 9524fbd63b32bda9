using Peft.Onnx.Core.Onnx;
using Xunit;

namespace Peft.Onnx.Tests.Core;

/// <summary>The per-layer names the graphs use are the patterns genai_config.json receives; position ids follow the mask.</summary>
public class OnnxContractTests
{
    [Fact]
    public void Layer_names_are_their_patterns_formatted()
    {
        Assert.Equal("past_key_values.3.key", CausalLmContract.PastKey(3));
        Assert.Equal("present.12.value", CausalLmContract.PresentValue(12));
        Assert.Equal("past_key_values.0.decoder.key", Seq2SeqContract.PastSelfKey(0));
        Assert.Equal("past_key_values.1.encoder.value", Seq2SeqContract.PastCrossValue(1));
        Assert.Equal("present.2.encoder.key", Seq2SeqContract.PresentCrossKey(2));
        Assert.Equal("present.2.decoder.value", Seq2SeqContract.PresentSelfValue(2));
    }

    [Fact]
    public void Position_ids_are_the_mask_cumsum_minus_one_with_padding_at_one()
    {
        // row 0 left-padded by two, row 1 unpadded; a step of 2 new tokens takes the last two columns
        long[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
        Assert.Equal([1L, 1, 0, 1, 2, 0, 1, 2, 3, 4], CausalLmContract.PositionIdsFromMask(mask, 2, 5));
        Assert.Equal([1L, 2, 3, 4], CausalLmContract.PositionIdsFromMask(mask, 2, 2));
        Assert.Throws<ArgumentException>(() => CausalLmContract.PositionIdsFromMask(mask, 3, 1));
        Assert.Throws<ArgumentException>(() => CausalLmContract.PositionIdsFromMask(mask, 2, 6));
    }

    [Fact]
    public void Data_files_sit_beside_their_graphs()
    {
        Assert.Equal(CausalLmContract.ModelFile + ".data", CausalLmContract.DataFile);
        Assert.Equal(Seq2SeqContract.EncoderFile + ".data", Seq2SeqContract.EncoderDataFile);
        Assert.Equal(Seq2SeqContract.DecoderFile + ".data", Seq2SeqContract.DecoderDataFile);
    }
}
