namespace Peft.Onnx.Runtime;

/// <summary>How <see cref="OrtSessions"/> opens a graph for a forward (not for generation: <see cref="OnnxModel"/> does that).</summary>
public enum ForwardSessionKind
{
    /// <summary>The CPU provider with ORT's default optimizations.</summary>
    Cpu,

    /// <summary>The CPU provider as the export check runs it (<see cref="OrtSessions.CheckOptions(string)"/>).</summary>
    Check,

    /// <summary>
    /// The check of a graph whose weight products are all MatMulNBits (<see cref="OrtSessions.QuantizedCheckOptions"/>):
    /// as <see cref="Check"/>, with weight pre-packing on.
    /// </summary>
    QuantizedCheck,

    /// <summary>The CUDA provider (device 0, TF32 off); inputs and outputs stay on the host.</summary>
    Cuda,
}
