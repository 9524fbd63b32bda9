using Xunit;
using Xunit.Sdk;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>The runner's own rules: a run whose mutated inputs are (almost) all rejected fails.</summary>
public class FuzzRunnerTests
{
    [Theory]
    [InlineData(0, 10_000)]
    [InlineData(99, 10_000)]
    [InlineData(0, 200)]
    public void A_run_with_too_few_accepted_inputs_fails(int accepted, int tried)
    {
        var ex = Assert.ThrowsAny<XunitException>(() => FuzzRunner.AssertSomeAccepted("garbage", 1, accepted, tried));
        Assert.Contains($"only {accepted} of {tried} mutated inputs were accepted", ex.Message);
    }

    [Theory]
    [InlineData(100, 10_000)]
    [InlineData(2, 200)]
    [InlineData(0, 199)]
    public void A_run_with_enough_accepted_inputs_or_too_short_to_judge_passes(int accepted, int tried) =>
        FuzzRunner.AssertSomeAccepted("mutator", 1, accepted, tried);
}
