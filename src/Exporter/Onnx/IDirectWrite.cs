namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// A write target whose buffer a producer may fill in place (<see cref="ModelWriterDataFile"/>): the bytes are computed
/// where they are written from, one copy less than writing them from a buffer of the producer's own.
/// </summary>
internal interface IDirectWrite
{
    /// <summary>The free part of the current buffer (empty where the target has none to lend).</summary>
    Memory<byte> FreeMemory { get; }

    /// <summary>Counts <paramref name="count"/> bytes written at the start of <see cref="FreeMemory"/>.</summary>
    void Advance(int count);
}
