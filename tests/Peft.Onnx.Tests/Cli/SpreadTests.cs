using Peft.Onnx.Bench;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>bench's round statistics: quartiles interpolate between order statistics as numpy.quantile's default.</summary>
public class SpreadTests
{
    [Fact]
    public void Quartiles_interpolate_linearly()
    {
        // numpy.quantile([4, 1, 3, 2], [0, .25, .5, .75, 1]) = [1, 1.75, 2.5, 3.25, 4]
        Assert.Equal(new Spread(2.5, 1, 4, 1.75, 3.25), Spread.Of([4, 1, 3, 2]));
        Assert.Equal(new Spread(7, 7, 7, 7, 7), Spread.Of([7]));
        Assert.True(double.IsNaN(Spread.Of([]).Median));
    }
}
