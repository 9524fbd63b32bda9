using System.Diagnostics;
using Peft.Onnx.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// A step whose token is cancelled while it runs either ends with OperationCanceledException or finishes; either way the
/// generator stays usable with another token (a per-step timeout, say), and its tokens stay those of an uncancelled run.
/// </summary>
public class GeneratorCancelTests
{
    [Fact]
    public void A_cancel_that_lands_as_a_step_ends_does_not_fail_the_next_step()
    {
        var model = ExportedModels.Model("gpt2");
        var request = GenerationRequest.FromIds([5, 17, 42, 7], GenerationOptions.Greedy(6) with { StopTokenIds = [] });
        var expected = model.Generate(request).NewTokens[0];

        // time one step, then cancel each first step at a random point of it, from another thread
        using (var timing = model.CreateGenerator(request))
        {
            timing.GenerateNextToken();
            var clock = Stopwatch.StartNew();
            timing.GenerateNextToken();
            var stepTicks = Math.Max(1, clock.ElapsedTicks);
            var random = new Random(3);
            int cancelled = 0, finishedAnyway = 0;
            for (int trial = 0; trial < 300; trial++)
            {
                using var generator = model.CreateGenerator(request);
                using var cts = new CancellationTokenSource();
                long delay = (long)(random.NextDouble() * 2 * stepTicks);
                var canceller = Task.Run(() =>
                {
                    var wait = Stopwatch.StartNew();
                    while (wait.ElapsedTicks < delay) Thread.SpinWait(20);
                    cts.Cancel();
                });
                try
                {
                    generator.GenerateNextToken(cts.Token);
                    finishedAnyway++;
                }
                catch (OperationCanceledException)
                {
                    cancelled++;
                }
                canceller.Wait();
                while (!generator.IsDone) generator.GenerateNextToken(CancellationToken.None);
                Assert.Equal(expected, generator.GetNewTokens()[0]);
            }
            Assert.True(cancelled > 0 && finishedAnyway > 0, $"{cancelled} cancelled, {finishedAnyway} finished");
        }
    }
}
