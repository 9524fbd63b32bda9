using System.Diagnostics;
using System.Globalization;

namespace Peft.Onnx.Core;

/// <summary>
/// Folders that appear complete or not at all, even when the writing process is killed (kill -9): the files go into a
/// hidden staging folder beside the target (same file system), which is renamed into place when it is complete.
/// Hidden names carry the writer's process id (".NAME.PID.GUID.tmp" for work in progress, ".NAME.PID.GUID.old" for a
/// replaced folder on its way out, ".NAME.PID.GUID.del" for a deleted one), so the next writer can tell leftovers of a
/// dead process from the work of a live one and remove them. (A process id names a process on this machine only: on
/// a folder shared between machines, another machine's live work would look dead.)
/// </summary>
public static class AtomicFolder
{
    /// <summary>A fresh hidden path beside <paramref name="target"/> for staging its new content (not created).</summary>
    public static string StagingPath(string target) => Hidden(target, "tmp");

    /// <summary>
    /// Puts the complete folder <paramref name="staged"/> in place of <paramref name="target"/>. An existing target is
    /// first renamed aside, so a kill leaves the old folder, the new one, or none under the target name (the old one
    /// then waits under its hidden name and <see cref="RemoveLeftovers"/> puts it back).
    /// </summary>
    public static void Publish(string staged, string target)
    {
        target = Full(target);
        if (!Directory.Exists(target))
        {
            Directory.Move(staged, target);
            return;
        }
        var aside = Hidden(target, "old");
        Directory.Move(target, aside);
        Directory.Move(staged, target);
        DeleteQuietly(aside);
    }

    /// <summary>Removes a folder so that no half-deleted folder is ever left under its name: renamed aside first, then deleted.</summary>
    public static void Delete(string dir)
    {
        dir = Full(dir);
        if (!Directory.Exists(dir)) return;
        var aside = Hidden(dir, "del");
        Directory.Move(dir, aside);
        DeleteQuietly(aside);
    }

    /// <summary>
    /// Cleans what killed writers left beside <paramref name="target"/>: staging folders and temp files of processes
    /// that no longer run are deleted; a replaced folder whose replacement never arrived is put back.
    /// </summary>
    public static void RemoveLeftovers(string target)
    {
        target = Full(target);
        var parent = Path.GetDirectoryName(target);
        if (parent is null || !Directory.Exists(parent)) return;
        var prefix = "." + Path.GetFileName(target) + ".";
        foreach (var entry in Directory.EnumerateFileSystemEntries(parent, prefix + "*").Order(StringComparer.Ordinal).ToList())
        {
            if (!TryParse(Path.GetFileName(entry), prefix.Length, out var pid, out var kind) || IsRunning(pid)) continue;
            if (kind == "old" && !Directory.Exists(target) && !File.Exists(target) && Directory.Exists(entry))
            {
                try { Directory.Move(entry, target); continue; }
                catch (IOException) { }
            }
            if (Directory.Exists(entry)) DeleteQuietly(entry);
            else try { File.Delete(entry); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Runs <see cref="RemoveLeftovers"/> for every entry name of <paramref name="dir"/> that a dead writer left temp work for.</summary>
    public static void RemoveLeftoversIn(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir, ".*").ToList())
        {
            var name = Path.GetFileName(entry);
            var end = name.Length;
            // .NAME.PID.GUID.KIND: the target's name is what precedes the last three dot-separated parts.
            for (int i = 0; i < 3 && end > 0; i++) end = name.LastIndexOf('.', end - 1);
            if (end <= 1) continue;
            var target = Path.Combine(dir, name[1..end]);
            if (TryParse(name, end + 1, out _, out _)) RemoveLeftovers(target);
        }
    }

    internal static string Hidden(string target, string kind)
    {
        target = Full(target);
        var parent = Path.GetDirectoryName(target) ?? throw new PeftOnnxException($"{target}: has no parent folder");
        return Path.Combine(parent, $".{Path.GetFileName(target)}.{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}.{Guid.NewGuid():N}.{kind}");
    }

    private static bool TryParse(string name, int start, out int pid, out string kind)
    {
        pid = 0;
        kind = "";
        var parts = name[start..].Split('.');
        if (parts.Length != 3 || parts[1].Length != 32 || !parts[1].All(char.IsAsciiHexDigitLower)) return false;
        kind = parts[2];
        return kind is "tmp" or "old" or "del" && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out pid);
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    private static string Full(string path) => Path.GetFullPath(Path.TrimEndingDirectorySeparator(path));

    private static void DeleteQuietly(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
