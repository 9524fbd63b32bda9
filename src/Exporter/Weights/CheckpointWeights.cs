using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// A checkpoint's tensors (memory-mapped safetensors) as a <see cref="WeightSource"/>. F32 tensors are handed out as
/// spans of the mapping (no copy); others are converted range by range. <see cref="Release"/> drops a tensor's pages
/// from this process once it is written, so streaming a whole checkpoint keeps only the tensor at hand resident.
/// Tensors are asked for by the model's names; a checkpoint of the bare base model holds them without the base-model
/// prefix (<see cref="CheckpointNames"/>).
/// </summary>
public sealed class CheckpointWeights(CheckpointTensors tensors) : WeightSource
{
    /// <summary>Bytes converted per span taken from the mapping (spans are int-indexed).</summary>
    private const int SliceBytes = 1 << 30;

    public CheckpointTensors Tensors { get; } = tensors;

    /// <summary>The checkpoint's name of a tensor the model calls <paramref name="name"/> (the name itself when neither form is there).</summary>
    private string Stored(string name) => CheckpointNames.Find(name, Tensors) ?? name;

    public override bool Contains(string name) => CheckpointNames.Find(name, Tensors) is not null;

    public override long[] Shape(string name) => Tensors[Stored(name)].Shape;

    public override bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values)
    {
        name = Stored(name);
        var e = Tensors[name];
        if (e.DType != DType.F32 || (long)count * 4 > int.MaxValue)
        {
            values = default;
            return false;
        }
        if (start < 0 || count < 0 || start > e.ElementCount - count) throw new ArgumentOutOfRangeException(nameof(start));
        values = MemoryMarshal.Cast<byte, float>(Tensors.FileOf(name).GetBytes(name, start * 4, count * 4));
        return true;
    }

    /// <summary>Byte offset of each file's data area (after the 8-byte length and the JSON header), read on first use.</summary>
    private readonly Dictionary<string, long> _dataStarts = new(StringComparer.Ordinal);

    public override StoredBytes? StoredFloat32(string name)
    {
        name = Stored(name);
        var e = Tensors[name];
        if (e.DType != DType.F32 || e.ByteLength == 0) return null;
        var path = Tensors.FileOf(name).Path;
        if (!_dataStarts.TryGetValue(path, out long dataStart))
        {
            Span<byte> length = stackalloc byte[8];
            using (var f = File.OpenHandle(path))
                if (RandomAccess.Read(f, length, 0) != 8) return null;
            _dataStarts[path] = dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(length);
        }
        return new StoredBytes(path, dataStart + e.Begin, e.ByteLength);
    }

    public override void Read(string name, long start, Span<float> destination)
    {
        name = Stored(name);
        var e = Tensors[name];
        if (start < 0 || start > e.ElementCount - destination.Length) throw new ArgumentOutOfRangeException(nameof(start));
        var file = Tensors.FileOf(name);
        int size = e.DType.Size();
        int per = SliceBytes / size;
        for (int done = 0; done < destination.Length; done += per)
        {
            int n = Math.Min(per, destination.Length - done);
            var bytes = file.GetBytes(name, (start + done) * size, n * size);
            var dst = destination.Slice(done, n);
            switch (e.DType)
            {
                case DType.F32:
                    MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst);
                    break;
                case DType.F16:
                    TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst);
                    break;
                case DType.BF16:
                    // bfloat16 is the top half of a float32: widen and shift
                    var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
                    var bits = MemoryMarshal.Cast<float, uint>(dst);
                    for (int i = 0; i < n; i++) bits[i] = (uint)halves[i] << 16;
                    break;
                case DType.F64:
                    var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                    for (int i = 0; i < n; i++) dst[i] = (float)doubles[i];
                    break;
                default:
                    throw new PeftOnnxException($"tensor '{e.Name}' has dtype {e.DType}, expected a floating-point type");
            }
        }
    }

    /// <summary>
    /// Drops the tensor's pages from this process's mapping (madvise MADV_DONTNEED on Linux; elsewhere nothing): the
    /// file stays mapped and the page cache keeps the data, so a later read simply faults the pages back in.
    /// </summary>
    public override unsafe void Release(string name)
    {
        if (!OperatingSystem.IsLinux()) return;
        name = Stored(name);
        var e = Tensors[name];
        if (e.ByteLength == 0) return;
        var first = Tensors.FileOf(name).GetBytes(name, 0, 1);
        long page = Environment.SystemPageSize;
        long begin = (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first));
        long from = begin / page * page, to = (begin + e.ByteLength + page - 1) / page * page;
        // Pages shared with a neighbouring tensor are dropped too: harmless, they fault back in from the page cache.
        _ = Madvise((nint)from, (nuint)(to - from), MadviseDontNeed);
    }

    private const int MadviseDontNeed = 4;

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);

    /// <summary>
    /// Checks that the checkpoint has every tensor the architecture expects, with the expected shape and a
    /// floating-point dtype, so a mismatched folder fails before anything is written.
    /// </summary>
    public void Validate(Core.Architectures.Architecture architecture, string dir)
    {
        foreach (var p in architecture.Parameters)
        {
            if (CheckpointNames.Find(p.Name, Tensors) is not { } stored) throw new PeftOnnxException($"{dir}: checkpoint has no tensor '{p.Name}' (expected by {architecture.ClassName})");
            var e = Tensors[stored];
            if (!e.Shape.SequenceEqual(p.Shape))
                throw new PeftOnnxException($"{dir}: tensor '{stored}' has shape [{string.Join(", ", e.Shape)}], config.json implies [{string.Join(", ", p.Shape)}]");
            if (e.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
                throw new PeftOnnxException($"{dir}: tensor '{stored}' has dtype {e.DType}, expected F32, F16, BF16 or F64");
        }
    }
}
