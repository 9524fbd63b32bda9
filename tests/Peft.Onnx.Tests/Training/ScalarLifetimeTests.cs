using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Training;

/// <summary>
/// TorchSharp passes only a Scalar's handle to libtorch, so a number turned into a temporary Scalar (tensor * 2.0,
/// tensor + tensor's alpha of 1, add_(x, alpha)) could be finalized by a collection on another thread while the
/// native call still read it ("Expected false to be true ... toFloat"). Here a background thread collects and
/// finalizes without pause while LoRA training steps and greedy decoding run: they must neither fail nor differ
/// from the same run without the collector.
/// </summary>
public class ScalarLifetimeTests
{
    private const int Steps = 6;
    private const int MinStressedRuns = 3;
    private static readonly TimeSpan StressTime = TimeSpan.FromSeconds(6);

    [Fact]
    public void Training_and_generation_give_the_same_results_while_another_thread_collects_garbage()
    {
        var quiet = Run();

        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true);
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "scalar-lifetime collector" };
        collector.Start();
        var stressed = new List<RunResult>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // The race needs a collection to finish inside one short native call, so give it many calls.
            while (stressed.Count < MinStressedRuns || clock.Elapsed < StressTime) stressed.Add(Run());
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }

        Assert.True(Interlocked.Read(ref collections) > 10, $"only {collections} collections ran beside the workload");
        foreach (var run in stressed)
        {
            Assert.Equal(quiet.Losses, run.Losses);
            Assert.Equal(quiet.Generated, run.Generated);
            Assert.Equal(quiet.Parameters.Keys, run.Parameters.Keys);
            foreach (var (name, values) in quiet.Parameters)
                Assert.True(values.AsSpan().SequenceEqual(run.Parameters[name]), $"{name} differs after a stressed run");
        }
    }

    private sealed record RunResult(float[] Losses, long[] Generated, Dictionary<string, float[]> Parameters);

    /// <summary>AdamW steps on a GPT-2 LoRA adapter (eval mode: no dropout draws), then greedy decoding with it.</summary>
    private static RunResult Run()
    {
        using var reference = new Reference("gpt2");
        using var model = PeftModel.Load(Paths.Case("gpt2", "base_model"), Path.Combine(Paths.Case("gpt2", "lora"), "adapter"));
        using var optimizer = new AdamW(model.Tuner.TrainableParameters, new AdamWOptions(Lr: 1e-2));
        using var scope = NewDisposeScope();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        var losses = new float[Steps];
        for (int step = 0; step < Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.ZeroGrad();
            var loss = model.Forward(new CausalLmInput(ids, mask, Labels: labels)).Loss!;
            loss.backward();
            optimizer.Step();
            losses[step] = loss.item<float>();
        }

        var prompt = tensor(reference.Inputs.ReadInt64("gen_input_ids"), reference.Shape("gen_input_ids"));
        var eos = model.Base.Config.EosTokenId!.Select(e => (long)e).ToArray();
        var generated = GreedySearch.Generate((CausalLm)model.Base, prompt, null,
            new GreedyOptions(8, eos, model.Base.Config.PadTokenId ?? eos[0]), input => model.Forward(input));
        var parameters = model.Tuner.TrainableParameters.ToDictionary(
            p => p.Name, p => p.Parameter.detach().contiguous().data<float>().ToArray());
        return new RunResult(losses, generated.data<long>().ToArray(), parameters);
    }
}
