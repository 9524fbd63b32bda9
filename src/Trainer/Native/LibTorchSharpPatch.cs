using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Peft.Onnx.Trainer.Native;

/// <summary>
/// libLibTorchSharp.so (TorchSharp 0.107) asks for GLIBCXX_3.4.32, which Debian 12's libstdc++ lacks.
/// The only symbol of that version is <c>std::ios_base_library_init</c>, which is never called at run
/// time, so marking the requirement weak (VER_FLG_WEAK) lets the loader accept the library. This runs
/// as a module initializer so it happens before TorchSharp's own loader opens the file.
/// </summary>
public static class LibTorchSharpPatch
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;
    private const string MissingVersion = "GLIBCXX_3.4.32";

    /// <summary>
    /// Runs when this assembly loads. Hosts that call TorchSharp directly before touching any Trainer type
    /// (test assemblies, tools) call it from their own module initializer.
    /// </summary>
#pragma warning disable CA2255 // a library initializer is the point here: it must run before TorchSharp's loader
    [ModuleInitializer]
    public static void PatchBesideApplication()
    {
        if (!OperatingSystem.IsLinux()) return;
        foreach (var dir in new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") })
        {
            var path = Path.Combine(dir, "libLibTorchSharp.so");
            if (File.Exists(path)) TryPatch(path);
        }
    }
#pragma warning restore CA2255

    /// <summary>Marks the GLIBCXX_3.4.32 requirement weak; returns true when the file was changed.</summary>
    internal static bool TryPatch(string path)
    {
        try
        {
            var elf = File.ReadAllBytes(path);
            var offset = FindRequirementFlags(elf);
            if (offset < 0) return false;
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(offset));
            if ((flags & VerFlagWeak) != 0) return false;
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            file.Position = offset;
            Span<byte> patched = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(patched, (ushort)(flags | VerFlagWeak));
            file.Write(patched);
            return true;
        }
        catch (IOException) { return false; }         // read-only install: the loader will say what is missing
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>File offset of vna_flags of the GLIBCXX_3.4.32 Vernaux entry, or -1.</summary>
    private static int FindRequirementFlags(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 /* ELFCLASS64 */) return -1;
        var span = elf.AsSpan();
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        for (int i = 0; i < shnum; i++)
        {
            var sh = span.Slice((int)(shoff + (long)i * shentsize), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            int sectionOffset = (int)BinaryPrimitives.ReadInt64LittleEndian(sh[0x18..]);
            int strtabIndex = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            var strtabHeader = span.Slice((int)(shoff + (long)strtabIndex * shentsize), shentsize);
            int strtab = (int)BinaryPrimitives.ReadInt64LittleEndian(strtabHeader[0x18..]);

            int verneed = sectionOffset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(verneed + 2)..]);
                int aux = verneed + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(verneed + 8)..]);
                for (int a = 0; a < auxCount; a++)
                {
                    int name = strtab + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 8)..]);
                    if (NameEquals(span, name, MissingVersion)) return aux + 4;
                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 12)..]);
                }
                verneed += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(verneed + 12)..]);
            }
        }
        return -1;
    }

    private static bool NameEquals(ReadOnlySpan<byte> elf, int offset, string expected)
    {
        var bytes = Encoding.ASCII.GetBytes(expected);
        return offset + bytes.Length < elf.Length && elf.Slice(offset, bytes.Length).SequenceEqual(bytes) && elf[offset + bytes.Length] == 0;
    }
}
