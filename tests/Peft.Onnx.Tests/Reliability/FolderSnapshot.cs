using System.Text.RegularExpressions;
using Xunit;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>The visible files of a folder (name to bytes, sub-folders included) and the checks on what a kill left.</summary>
public sealed partial class FolderSnapshot
{
    public IReadOnlyDictionary<string, byte[]> Files { get; }

    private FolderSnapshot(Dictionary<string, byte[]> files) => Files = files;

    /// <summary>The folder's visible files, or null when there is no folder. Hidden entries (work in progress) are left out.</summary>
    public static FolderSnapshot? Of(string dir)
    {
        if (!Directory.Exists(dir)) return null;
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(dir, file);
            if (relative.Split(Path.DirectorySeparatorChar).Any(p => p.StartsWith('.'))) continue;
            files[relative] = File.ReadAllBytes(file);
        }
        return new FolderSnapshot(files);
    }

    /// <summary>The same files with the same bytes.</summary>
    public bool SameAs(FolderSnapshot? other) =>
        other is not null && Files.Count == other.Files.Count
        && Files.All(kv => other.Files.TryGetValue(kv.Key, out var b) && b.AsSpan().SequenceEqual(kv.Value));

    public string Describe() => Files.Count == 0 ? "(empty)" : string.Join(", ", Files.Keys.Order(StringComparer.Ordinal).Select(k => $"{k} ({Files[k].Length} B)"));

    /// <summary>
    /// Every hidden entry in <paramref name="dir"/> (and below) is a writer's staging or temp name (".NAME.PID.GUID.tmp|old|del"),
    /// never a name that looks like a real file.
    /// </summary>
    public static void AssertOnlyStagingNamesHidden(string dir, string what)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir, ".*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(entry);
            var parentHidden = Path.GetRelativePath(dir, Path.GetDirectoryName(entry)!).Split(Path.DirectorySeparatorChar).Any(p => p.StartsWith('.') && p != ".");
            if (parentHidden) continue; // inside a staging folder: its files are work in progress
            Assert.True(StagingName().IsMatch(name), $"{what}: unexpected hidden entry '{entry}'");
        }
    }

    /// <summary>Hidden staging names beside <paramref name="target"/> (in its parent folder); only process <paramref name="pid"/>'s when given.</summary>
    public static List<string> StagingBeside(string target, int? pid = null)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (!Directory.Exists(parent)) return [];
        return Directory.EnumerateFileSystemEntries(parent, "." + Path.GetFileName(target) + (pid is null ? ".*" : $".{pid}.*")).ToList();
    }

    /// <summary>Whether process <paramref name="pid"/> has a staging folder in <paramref name="dir"/> (for any entry).</summary>
    public static bool StagingIn(string dir, int pid)
    {
        // polled while the child runs: the folder may vanish between the check and the listing (a run replacing OUT)
        try { return Directory.Exists(dir) && Directory.EnumerateDirectories(dir, $".*.{pid}.*.tmp").Any(); }
        catch (DirectoryNotFoundException) { return false; }
    }

    /// <summary>How many staging or temp entries a writer left in <paramref name="dir"/> (at any depth) and beside it.</summary>
    public static int Leftovers(string dir) =>
        StagingBeside(dir).Count + (Directory.Exists(dir) ? Directory.EnumerateFileSystemEntries(dir, ".*", SearchOption.AllDirectories).Count(e => StagingName().IsMatch(Path.GetFileName(e))) : 0);

    [GeneratedRegex(@"^\..+\.[0-9]+\.[0-9a-f]{32}\.(tmp|old|del)$")]
    private static partial Regex StagingName();
}
