using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Peft.Onnx.Core.SafeTensors;

/// <summary>
/// A memory-mapped safetensors file. The whole header is validated in <see cref="Open"/> before any
/// tensor byte is touched, so a corrupt file fails there with a message naming the file and the problem.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable, ITensorSource
{
    /// <summary>Headers beyond this are refused: real files stay far below it and it bounds the JSON parse.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorEntry> _entries;
    private bool _disposed;

    public string Path { get; }
    public IReadOnlyList<TensorEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path, SafeTensorsHeader header, long fileLength)
    {
        Path = path;
        Entries = header.Entries;
        Metadata = header.Metadata;
        _entries = header.Entries.ToDictionary(e => e.Name);
        _dataStart = 8 + header.HeaderLength;
        if (fileLength > 0)
        {
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
        }
    }

    public static SafeTensorsFile Open(string path)
    {
        try { return OpenChecked(path); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static SafeTensorsFile OpenChecked(string path)
    {
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: file not found");
        long length;
        SafeTensorsHeader header;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            length = stream.Length;
            header = SafeTensorsHeader.Read(stream, path);
        }
        return new SafeTensorsFile(path, header, length);
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public IEnumerable<string> Names => Entries.Select(e => e.Name);

    public TensorEntry this[string name] => _entries.TryGetValue(name, out var e) ? e
        : throw new PeftOnnxException($"{Path}: no tensor named '{name}'");

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping (valid until Dispose).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var e = this[name];
        if (e.ByteLength == 0) return ReadOnlySpan<byte>.Empty;
        if (e.ByteLength > int.MaxValue) throw new PeftOnnxException($"{Path}: tensor '{name}' is over 2 GB; read it in slices with GetBytes(name, offset, length)");
        return new ReadOnlySpan<byte>(_base + _dataStart + e.Begin, (int)e.ByteLength);
    }

    /// <summary>A slice of a tensor's bytes, for tensors too large for one span.</summary>
    public ReadOnlySpan<byte> GetBytes(string name, long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var e = this[name];
        if (offset < 0 || length < 0 || offset > e.ByteLength - length) throw new ArgumentOutOfRangeException(nameof(offset)); // no overflow for a huge offset
        return new ReadOnlySpan<byte>(_base + _dataStart + e.Begin + offset, length);
    }

    public float[] ReadFloat32(string name) => TensorConvert.ToFloat32(this[name], GetBytes(name), Path);

    public long[] ReadInt64(string name) => TensorConvert.ToInt64(this[name], GetBytes(name), Path);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
