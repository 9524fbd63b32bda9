using System.Reflection;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Lora;
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
    private const int MinStressedRuns = 2;
    private const int Workers = 2;
    private static readonly TimeSpan StressTime = TimeSpan.FromSeconds(4);

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
                GC.Collect(0, GCCollectionMode.Forced, blocking: true);   // temporaries are young: short gen0 collections hit most often
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "scalar-lifetime collector" };
        collector.Start();
        var stressed = new System.Collections.Concurrent.ConcurrentBag<RunResult>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // The race needs a collection and a finalizer to finish inside one short native call, so give it many
            // calls, from several threads at once as the test runner does.
            var workers = Enumerable.Range(0, Workers).Select(_ => new Thread(() =>
            {
                for (int runs = 0; runs < MinStressedRuns || clock.Elapsed < StressTime; runs++) stressed.Add(Run());
            })).ToList();
            workers.ForEach(t => t.Start());
            workers.ForEach(t => t.Join());
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

    /// <summary>
    /// The race is too narrow to hit on demand, so this reads the IL: no Trainer method may convert a number to a
    /// Scalar implicitly, make one with ToScalar without disposing it, or call a TorchSharp member that makes
    /// Scalars itself and leaves them to the finalizer (tensor * 2.0, tensor + tensor, arange(n), square(), ...).
    /// </summary>
    [Fact]
    public void No_trainer_method_hands_libtorch_a_scalar_that_nothing_keeps_alive()
    {
        var offenders = new List<string>();
        var leaky = new Dictionary<MethodBase, bool>();
        const BindingFlags declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in typeof(LoraLayer).Assembly.GetTypes())
            foreach (var method in type.GetMethods(declared).Cast<MethodBase>().Concat(type.GetConstructors(declared)))
            {
                var callees = Callees(method);
                bool disposes = callees.Any(IsDispose);
                foreach (var callee in callees)
                {
                    if (IsImplicitScalar(callee) || (IsToScalar(callee) && !disposes)
                        || (IsTorchSharp(callee) && MakesUnheldScalar(callee, 3, leaky)))
                        offenders.Add($"{type.FullName}.{method.Name} -> {callee.DeclaringType?.Name}.{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))})");
                }
            }
        Assert.True(offenders.Count == 0, "temporary Scalars passed to native code:\n" + string.Join("\n", offenders.Distinct()));
    }

    private static bool IsImplicitScalar(MethodBase m) => m.DeclaringType?.FullName == "TorchSharp.Scalar" && m.Name == "op_Implicit";
    private static bool IsToScalar(MethodBase m) => m.DeclaringType?.FullName == "TorchSharp.ScalarExtensionMethods" && m.Name == "ToScalar";
    private static bool IsDispose(MethodBase m) => m.Name == "Dispose" && m.DeclaringType?.FullName is "TorchSharp.Scalar" or "System.IDisposable";
    private static bool IsTorchSharp(MethodBase m) => m.DeclaringType?.Assembly == typeof(TorchSharp.Scalar).Assembly;

    /// <summary>Whether a TorchSharp member, or one it calls (up to <paramref name="depth"/> deep), makes a Scalar it never disposes.</summary>
    private static bool MakesUnheldScalar(MethodBase method, int depth, Dictionary<MethodBase, bool> known)
    {
        if (known.TryGetValue(method, out var result)) return result;
        known[method] = false; // recursion guard
        var callees = Callees(method);
        result = (callees.Any(c => IsImplicitScalar(c) || IsToScalar(c)) && !callees.Any(IsDispose))
            || (depth > 0 && callees.Where(c => IsTorchSharp(c) && !IsImplicitScalar(c) && !IsToScalar(c)).Any(c => MakesUnheldScalar(c, depth - 1, known)));
        return known[method] = result;
    }

    /// <summary>The methods a method's IL calls (call, callvirt, newobj).</summary>
    private static List<MethodBase> Callees(MethodBase method)
    {
        var callees = new List<MethodBase>();
        var il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null) return callees;
        var typeArgs = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i + 4 < il.Length; i++)
        {
            if (il[i] is not (0x28 or 0x6F or 0x73)) continue;
            int token = BitConverter.ToInt32(il, i + 1);
            if ((token >> 24) is not (0x06 or 0x0A or 0x2B)) continue;
            try { if (method.Module.ResolveMethod(token, typeArgs, methodArgs) is { } callee) callees.Add(callee); }
            catch (ArgumentException) { }   // the byte was an operand, not an opcode
            catch (TypeLoadException) { }
        }
        return callees;
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
