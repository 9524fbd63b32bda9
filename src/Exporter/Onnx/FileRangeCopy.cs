using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// Copies a byte range of one file into another at a given offset: on Linux with copy_file_range (the kernel moves
/// page-cache pages, or shares blocks where the file system can; nothing passes through this process's memory), else,
/// or where the kernel refuses the pair of files, through a buffer.
/// </summary>
internal static class FileRangeCopy
{
    private const int BufferBytes = 1 << 20;
    private const long MaxCall = 1L << 30;

    public static void Copy(string sourcePath, long sourceOffset, SafeFileHandle target, long targetOffset, long length)
    {
        using var source = File.OpenHandle(sourcePath, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (RandomAccess.GetLength(source) < sourceOffset + length)
            throw new IOException($"{sourcePath}: {length} bytes from offset {sourceOffset} run past the end of the file");
        long done = 0;
        if (OperatingSystem.IsLinux())
        {
            long from = sourceOffset, to = targetOffset;
            while (done < length)
            {
                nint n = CopyFileRange(source, ref from, target, ref to, (nuint)Math.Min(MaxCall, length - done), 0);
                if (n <= 0) break; // unsupported for these files (or an error the buffered copy reports): copy the rest below
                done += n;
            }
        }
        if (done == length) return;
        var buffer = new byte[(int)Math.Min(BufferBytes, length - done)];
        while (done < length)
        {
            int n = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - done)), sourceOffset + done);
            if (n <= 0) throw new IOException($"{sourcePath}: ended while {length - done} bytes were still to copy");
            RandomAccess.Write(target, buffer.AsSpan(0, n), targetOffset + done);
            done += n;
        }
    }

    [DllImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    private static extern nint CopyFileRange(SafeFileHandle source, ref long sourceOffset, SafeFileHandle target, ref long targetOffset, nuint length, uint flags);
}
