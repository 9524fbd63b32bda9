using Peft.Onnx.Tests.Support;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>Real files of the repository that the fuzzers start from.</summary>
public static class Seeds
{
    /// <summary>Every file named <paramref name="fileName"/> under tests/fixtures and models, smallest first, at most <paramref name="maxBytes"/> each.</summary>
    public static List<byte[]> Named(string fileName, long maxBytes = 1 << 20) =>
        new[] { Paths.Fixtures, Paths.Models }
            .SelectMany(root => Directory.EnumerateFiles(root, fileName, SearchOption.AllDirectories))
            .Select(p => new FileInfo(p))
            .Where(f => f.Length <= maxBytes)
            .OrderBy(f => f.Length).ThenBy(f => f.FullName, StringComparer.Ordinal)
            .Select(f => File.ReadAllBytes(f.FullName))
            .ToList();

    public static List<byte[]> Files(string root, string pattern, long maxBytes = 1 << 20) =>
        Directory.EnumerateFiles(Path.Combine(Paths.RepoRoot, root), pattern, SearchOption.AllDirectories)
            .Select(p => new FileInfo(p))
            .Where(f => f.Length <= maxBytes)
            .OrderBy(f => f.Length).ThenBy(f => f.FullName, StringComparer.Ordinal)
            .Select(f => File.ReadAllBytes(f.FullName))
            .ToList();

    public static T Pick<T>(this IReadOnlyList<T> list, Random r) => list[r.Next(list.Count)];

    /// <summary>A fresh temp folder for one fuzz test, removed by the caller: in /dev/shm where there is one (10,000 file writes).</summary>
    public static string TempDir(string parser)
    {
        if (Directory.Exists("/dev/shm"))
        {
            try
            {
                var dir = Path.Combine("/dev/shm", $"peft-onnx-fuzz-{parser}-{Guid.NewGuid():N}");
                Directory.CreateDirectory(dir);
                return dir;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return Paths.TempDir("peft-onnx-fuzz-" + parser);
    }
}
