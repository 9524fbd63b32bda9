using System.Diagnostics;
using System.Runtime.CompilerServices;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
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
            void Trial(long delay, bool cancel)
            {
                using var generator = model.CreateGenerator(request);
                using var cts = new CancellationTokenSource();
                // The canceller is already running (spinning on `go`) when the step starts, so thread start-up does not
                // push every cancel past the step's end on a loaded machine.
                var go = new StrongBox<bool>(false);
                var canceller = Task.Factory.StartNew(() =>
                {
                    while (!Volatile.Read(ref go.Value)) Thread.SpinWait(20);
                    var wait = Stopwatch.StartNew();
                    while (wait.ElapsedTicks < delay) Thread.SpinWait(20);
                    if (cancel) cts.Cancel();
                }, TaskCreationOptions.LongRunning);
                if (delay < 0 && cancel) cts.Cancel();
                Volatile.Write(ref go.Value, true);
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
            // Both outcomes for certain (cancelled before the step; never cancelled), then cancels at random points
            // of the step: which of those land in time depends on the machine, each must leave the generator usable.
            Trial(-1, cancel: true);
            Assert.Equal(1, cancelled);
            Trial(0, cancel: false);
            Assert.Equal(1, finishedAnyway);
            for (int trial = 0; trial < 300; trial++) Trial((long)(random.NextDouble() * 2 * stepTicks), cancel: true);
            Assert.Equal(302, cancelled + finishedAnyway);
        }
    }
}
