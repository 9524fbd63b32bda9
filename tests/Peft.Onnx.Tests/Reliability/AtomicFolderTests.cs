using Peft.Onnx.Core;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// The states a kill -9 can leave at each step of <see cref="AtomicFolder"/>, built by hand (the random kills of the
/// other tests reach the instants between two renames only rarely), and what the next writer makes of them.
/// </summary>
public class AtomicFolderTests
{
    /// <summary>Above Linux's largest pid_max (2^22): no process has it.</summary>
    private const int DeadPid = (1 << 22) + 1;

    private static string Leftover(string target, int pid, string kind) =>
        Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{pid}.{Guid.NewGuid():N}.{kind}");

    private static string FolderWith(string dir, string file, string text)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, file), text);
        return dir;
    }

    [Fact]
    public void Publish_replaces_a_folder_and_leaves_nothing_beside_it()
    {
        var root = Paths.TempDir("peft-onnx-atomic");
        var target = FolderWith(Path.Combine(root, "out"), "a.txt", "old");
        var staged = FolderWith(AtomicFolder.StagingPath(target), "b.txt", "new");
        Assert.StartsWith($".out.{Environment.ProcessId}.", Path.GetFileName(staged));

        AtomicFolder.Publish(staged, target);

        Assert.Equal(["b.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName));
        Directory.Delete(root, true);
    }

    [Fact]
    public void A_swap_killed_between_its_renames_gets_the_old_folder_back()
    {
        var root = Paths.TempDir("peft-onnx-atomic");
        var target = Path.Combine(root, "out");
        // What Publish leaves when killed after moving the old folder aside, before moving the new one in.
        FolderWith(Leftover(target, DeadPid, "old"), "a.txt", "old");
        FolderWith(Leftover(target, DeadPid, "tmp"), "b.txt", "new, maybe incomplete");

        AtomicFolder.RemoveLeftovers(target);

        Assert.Equal("old", File.ReadAllText(Path.Combine(target, "a.txt")));
        Assert.Equal(["out"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Leftovers_of_dead_writers_go_and_those_of_live_ones_stay()
    {
        var root = Paths.TempDir("peft-onnx-atomic");
        var target = FolderWith(Path.Combine(root, "out"), "a.txt", "current");
        var deadStaging = FolderWith(Leftover(target, DeadPid, "tmp"), "x", "");
        var deadDeleted = FolderWith(Leftover(target, DeadPid, "del"), "x", "");
        var deadReplaced = FolderWith(Leftover(target, DeadPid, "old"), "x", ""); // the target exists: not put back
        var liveStaging = FolderWith(Leftover(target, Environment.ProcessId, "tmp"), "x", "");
        var deadTempFile = Leftover(Path.Combine(target, "metrics.jsonl"), DeadPid, "tmp");
        File.WriteAllText(deadTempFile, "half a line");
        var lookalike = Path.Combine(root, ".out.backup"); // not a writer's name: never touched
        Directory.CreateDirectory(lookalike);

        AtomicFolder.RemoveLeftovers(target);
        AtomicFolder.RemoveLeftoversIn(target);

        Assert.False(Directory.Exists(deadStaging));
        Assert.False(Directory.Exists(deadDeleted));
        Assert.False(Directory.Exists(deadReplaced));
        Assert.False(File.Exists(deadTempFile));
        Assert.True(Directory.Exists(liveStaging));
        Assert.True(Directory.Exists(lookalike));
        Assert.Equal("current", File.ReadAllText(Path.Combine(target, "a.txt")));
        Directory.Delete(root, true);
    }

    [Fact]
    public void Delete_killed_midway_leaves_no_half_folder_under_the_name_and_is_not_undone()
    {
        var root = Paths.TempDir("peft-onnx-atomic");
        var target = Path.Combine(root, "checkpoints");
        // What Delete leaves when killed after its rename: the folder under a hidden name, partly deleted.
        FolderWith(Leftover(target, DeadPid, "del"), "state.json", "{}");

        AtomicFolder.RemoveLeftovers(target);

        Assert.Empty(Directory.GetFileSystemEntries(root));
        Directory.Delete(root, true);
    }
}
