using Peft.Onnx.Core.Peft;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Vera;

/// <summary>
/// VeRA's frozen projections shared by every target: vera_A [r, largest in] and vera_B [largest out, r], drawn as
/// PEFT's _kaiming_init does (uniform within sqrt(3) * sqrt(2) / sqrt(fan_in), from one CPU generator seeded with
/// projection_prng_key, A first). Loading an adapter overwrites them with the saved ones.
/// </summary>
public sealed class VeraProjections : IDisposable
{
    public VeraProjections(VeraConfig config, IReadOnlyList<TargetMatch> targets, Device device)
    {
        var shapes = config.SharedTensors(targets);
        using var generator = new Generator((ulong)config.ProjectionPrngKey, device: CPU);
        using (no_grad())
        {
            A = KaimingUniform(shapes[0].Shape, generator).to(device).DetachFromDisposeScope();
            B = KaimingUniform(shapes[1].Shape, generator).to(device).DetachFromDisposeScope();
        }
    }

    /// <summary>vera_A [r, largest in].</summary>
    public Tensor A { get; }

    /// <summary>vera_B [largest out, r].</summary>
    public Tensor B { get; }

    private static Tensor KaimingUniform(long[] shape, Generator generator)
    {
        var t = empty(shape, float32, CPU);
        var bound = Math.Sqrt(3.0) * (Math.Sqrt(2.0) / Math.Sqrt(shape[1]));
        return t.uniform_(-bound, bound, generator);
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
