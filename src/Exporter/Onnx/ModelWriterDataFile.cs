using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// The external data file as <see cref="ModelWriter"/> streams it: bytes gathered into large buffers that are written
/// in the background while the next one fills (conversion and disk overlap). On Linux the file is opened with O_DIRECT:
/// the buffers go to the disk without being copied into the page cache (the copy, not the disk, was most of an export's
/// CPU time), so the data is on disk when writing ends; elsewhere, or where the file system refuses O_DIRECT, the same
/// buffers go through the page cache. Only sequential writes are supported.
/// </summary>
internal sealed class ModelWriterDataFile : Stream
{
    private const int BufferBytes = 8 << 20;
    private const int Alignment = 4096;

    private readonly SafeFileHandle _handle;
    private readonly bool _direct;
    private Memory<byte> _current;
    private Memory<byte> _other;
    private int _fill;
    private long _written;
    private Task? _pending;
    private bool _finished;

    private ModelWriterDataFile(SafeFileHandle handle, bool direct)
    {
        _handle = handle;
        _direct = direct;
        _current = AlignedBuffer();
        _other = AlignedBuffer();
    }

    /// <summary>True when the file bypasses the page cache (O_DIRECT).</summary>
    public bool Direct => _direct;

    public static ModelWriterDataFile Create(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            int fd = Open(path, OWriteOnly | OCreate | OTruncate | ODirect | OCloseOnExec, 420 /* 0644 */);
            if (fd >= 0) return new ModelWriterDataFile(new SafeFileHandle(fd, ownsHandle: true), direct: true);
        }
        return new ModelWriterDataFile(File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.None), direct: false);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Position;
    public override long Position { get => _written + _fill; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, BufferBytes - _fill);
            data[..n].CopyTo(_current.Span[_fill..]);
            _fill += n;
            data = data[n..];
            if (_fill == BufferBytes) Submit(BufferBytes);
        }
    }

    /// <summary>The free part of the current buffer, for a producer to fill in place before <see cref="Advance"/>.</summary>
    public Span<byte> FreeSpan => _current.Span[_fill..];

    /// <summary>Counts <paramref name="count"/> bytes written into <see cref="FreeSpan"/>.</summary>
    public void Advance(int count)
    {
        if (count < 0 || count > BufferBytes - _fill) throw new ArgumentOutOfRangeException(nameof(count));
        _fill += count;
        if (_fill == BufferBytes) Submit(BufferBytes);
    }

    /// <summary>Writes what is buffered and sets the file to its exact length (durability: <see cref="ModelWriter.FlushToDisk"/>).</summary>
    public void Finish()
    {
        if (_finished) return;
        long length = Position;
        if (_fill > 0)
        {
            // O_DIRECT writes whole blocks: pad the last one, then cut the file back to its length
            int size = _direct ? (_fill + Alignment - 1) / Alignment * Alignment : _fill;
            _current.Span[_fill..size].Clear();
            Submit(size);
        }
        _pending?.GetAwaiter().GetResult();
        _pending = null;
        _finished = true;
        RandomAccess.SetLength(_handle, length);
    }

    public override void Flush() { }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            try { _pending?.Wait(); } catch (AggregateException) { } // failed writes were reported by Finish, or the write is being abandoned
            _handle.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>Starts writing the current buffer's first <paramref name="size"/> bytes and swaps buffers.</summary>
    private void Submit(int size)
    {
        _pending?.GetAwaiter().GetResult();
        var chunk = _current[..size];
        long at = _written;
        _pending = Task.Run(() => RandomAccess.Write(_handle, chunk.Span, at));
        (_current, _other) = (_other, _current);
        _written += _fill;
        _fill = 0;
    }

    /// <summary>A pinned buffer starting on a block boundary (O_DIRECT needs aligned addresses).</summary>
    private static unsafe Memory<byte> AlignedBuffer()
    {
        var array = GC.AllocateUninitializedArray<byte>(BufferBytes + Alignment, pinned: true);
        long address = (long)Marshal.UnsafeAddrOfPinnedArrayElement(array, 0);
        int offset = (int)((Alignment - address % Alignment) % Alignment);
        return array.AsMemory(offset, BufferBytes);
    }

    /// <summary>
    /// Asks the kernel to read the file into the page cache in the background (posix_fadvise WILLNEED), so a reader that
    /// memory-maps it next (the ONNX Runtime check) finds the pages there instead of faulting them in from disk.
    /// </summary>
    public static void Prefetch(string path)
    {
        if (!OperatingSystem.IsLinux()) return;
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long length = RandomAccess.GetLength(handle);
        // the kernel reads at most its readahead window (read_ahead_kb, often 128 KB to 8 MB) per call: ask chunk by chunk
        for (long offset = 0; offset < length; offset += PrefetchChunk)
            if (FileAdvise(handle, offset, Math.Min(PrefetchChunk, length - offset), AdviseWillNeed) != 0) return;
    }

    private const long PrefetchChunk = 128 << 10;

    private const int OWriteOnly = 0x1, OCreate = 0x40, OTruncate = 0x200, ODirect = 0x4000, OCloseOnExec = 0x80000;
    private const int AdviseWillNeed = 3;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    [DllImport("libc", EntryPoint = "posix_fadvise", SetLastError = true)]
    private static extern int FileAdvise(SafeFileHandle fd, long offset, long length, int advice);
}
