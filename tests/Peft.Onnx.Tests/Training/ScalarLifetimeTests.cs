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
/// native call still read it ("Expected false to be true ... toFloat"). The window is microseconds, so a stress test
/// does not catch it (measured: 0 of 9 runs on the unfixed code), and a thread forcing collections crashed other
/// tests running beside it; the IL is checked instead: the Trainer's, and the CLI's (compare, bench and train call
/// TorchSharp too).
/// </summary>
public class ScalarLifetimeTests
{
    [Theory]
    [InlineData("Peft.Onnx.Trainer")]
    [InlineData("peft-onnx")]
    public void No_method_hands_libtorch_a_scalar_that_nothing_keeps_alive(string assemblyName)
    {
        var offenders = new List<string>();
        var leaky = new Dictionary<MethodBase, bool>();
        const BindingFlags declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in Assembly.Load(assemblyName).GetTypes())
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
}
