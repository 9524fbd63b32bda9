using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// `export --base ... --adapter ... --out DIR --force` killed with SIGKILL while it writes, into no folder or over an
/// older export: DIR is the old export or the new one (or, for the instant of the swap, none), and the new one loads and
/// runs in ONNX Runtime; a rerun succeeds (without --force when DIR is absent: no leftover blocks it) and clears the leftovers.
/// </summary>
public class ExportKillTests(ITestOutputHelper output)
{
    private static string[] Args(string adapter, string outDir) =>
        ["export", "--base", Paths.Case("bloom", "base_model"), "--adapter", Paths.Case("bloom", adapter), "--out", outDir, "--force"];

    /// <summary>
    /// LoRA (merged into the weights) over an older IA3 export, and prompt tuning (whose export first runs a scratch model
    /// beside the target to bake the prompt's keys/values) over an older LoRA export, with half as many kills.
    /// </summary>
    [Theory]
    [InlineData("lora/adapter", "ia3/adapter", 1)]
    [InlineData("prompt_tuning_random/adapter", "lora/adapter", 2)]
    public void Kill_9_during_export_leaves_the_old_folder_or_the_new_one(string adapter, string olderAdapter, int killsDivisor)
    {
        var work = Paths.TempDir("peft-onnx-kill-export");
        var cpu = ChildRun.ChildrenCpu();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var olderExport = Path.Combine(work, "older-export");
            Assert.Equal(0, ChildRun.Run(Args(olderAdapter, olderExport)).ExitCode);
            var older = FolderSnapshot.Of(olderExport)!;

            // The uninterrupted export gives the new folder and its write phase: from the staging folder's appearance to the
            // line it prints when done.
            var reference = Path.Combine(work, "reference");
            var calibration = ChildRun.Run(Args(adapter, reference), new KillAt(TimeSpan.FromMinutes(10), Appears: pid => Writing(reference, pid)));
            Assert.True(calibration.ExitCode == 0, calibration.Stderr);
            Assert.False(calibration.Killed);
            var written = FolderSnapshot.Of(reference)!;
            Assert.Contains("model.onnx", written.Files.Keys);
            AssertRuns(reference);
            double staged = calibration.TriggerMilliseconds ?? throw new Xunit.Sdk.XunitException("the staging folder was never seen");
            double window = (calibration.LineAt("export: ") ?? calibration.Milliseconds) - staged;
            output.WriteLine($"PEFT_KILL_SEED={KillSettings.BaseSeed} PEFT_KILL_COUNT={KillSettings.Count}; uninterrupted export {calibration.Milliseconds:F0} ms, writing (staging folder to the export: line) {window:F0} ms");

            var outcomes = new Dictionary<string, int>();
            var failures = new List<string>();
            var killed = new List<(string Dir, bool Absent)>();
            int kills = 0;
            foreach (int i in KillSettings.Attempts(() => kills * killsDivisor))
            {
                var random = KillSettings.For("export " + adapter, i);
                var dir = Path.Combine(work, $"kill-{i}", "onnx");
                bool overOld = i % 2 == 1;
                if (overOld) CopyFolder(olderExport, dir);
                var before = FolderSnapshot.Of(dir);
                var kill = random.Next(4) != 0
                    ? new KillAt(random.LogUniform(window * 1.1), Appears: pid => Writing(dir, pid))
                    : new KillAt(TimeSpan.FromMilliseconds(random.NextDouble() * calibration.Milliseconds));
                var run = ChildRun.Run(Args(adapter, dir), kill);
                if (run.Killed) kills++;

                var after = FolderSnapshot.Of(dir);
                string outcome = after is null
                    ? (before is null ? "absent (as before)" : FolderSnapshot.StagingBeside(dir).Any(p => p.EndsWith(".old", StringComparison.Ordinal)) ? "absent (mid-swap, old kept aside)" : "LOST")
                    : before is not null && after.SameAs(before) ? "old"
                    : after.SameAs(written) ? "new"
                    : "PARTIAL";
                if (!run.Killed && run.ExitCode != 0) outcome = $"EXIT {run.ExitCode}";
                output.WriteLine($"kill {i} (seed {KillSettings.Seed("export " + adapter, i)}, over {(overOld ? "an older export" : "nothing")}): {kill} -> {(run.Killed ? "killed" : "exited")} at {run.Milliseconds:F0} ms, {FolderSnapshot.Leftovers(dir) + FolderSnapshot.StagingBeside(PrefillScratch(dir)).Count} staging/temp leftovers: {outcome}");
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (outcome is "LOST" or "PARTIAL" || outcome.StartsWith("EXIT", StringComparison.Ordinal))
                    failures.Add($"kill {i} (PEFT_KILL_CASE={i}, {kill}): {outcome}: {after?.Describe() ?? "no folder"}");
                try
                {
                    FolderSnapshot.AssertOnlyStagingNamesHidden(Path.GetDirectoryName(dir)!, $"kill {i}");
                }
                catch (Exception e) { failures.Add($"kill {i} (PEFT_KILL_CASE={i}): {e.Message}"); }
                killed.Add((dir, after is null));
            }
            output.WriteLine($"{kills} kills; outcomes: " + string.Join(", ", outcomes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}")));
            Assert.True(failures.Count == 0, $"PEFT_KILL_SEED={KillSettings.BaseSeed}: " + string.Join(" | ", failures));

            // Reruns into killed runs' folders succeed (without --force where the folder is absent) and leave no leftovers.
            foreach (var (dir, absent) in killed.TakeLast(2))
            {
                var args = Args(adapter, dir);
                var rerun = ChildRun.Run(absent ? args[..^1] : args);
                Assert.True(rerun.ExitCode == 0, rerun.Stderr);
                Assert.True(written.SameAs(FolderSnapshot.Of(dir)), $"{dir} after a rerun: {FolderSnapshot.Of(dir)?.Describe()}");
                Assert.Empty(FolderSnapshot.StagingBeside(dir));
                Assert.Empty(FolderSnapshot.StagingBeside(PrefillScratch(dir)));
                AssertRuns(dir);
            }
        }
        finally
        {
            output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s; the child processes used {(ChildRun.ChildrenCpu() - cpu).TotalSeconds:F1} s of CPU (with those of tests running beside this one)");
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>The prompt export's scratch model is staged under this name beside the target.</summary>
    private static string PrefillScratch(string target) => Path.Combine(Path.GetDirectoryName(target)!, Peft.Onnx.Exporter.Passes.BakeSoftPrompt.ScratchName);

    /// <summary>Whether process <paramref name="pid"/> has begun writing: its staging folder or its scratch model beside <paramref name="target"/>.</summary>
    private static bool Writing(string target, int pid) =>
        FolderSnapshot.StagingBeside(target, pid).Count > 0 || FolderSnapshot.StagingBeside(PrefillScratch(target), pid).Count > 0;

    /// <summary>The folder loads in ONNX Runtime and generates (greedy, from token ids: the fixture model has no tokenizer).</summary>
    private static void AssertRuns(string dir)
    {
        using var model = OnnxModel.Load(dir, DeviceOptions.Cpu);
        var result = model.Generate(GenerationRequest.FromIds([5, 17, 42, 7], GenerationOptions.Greedy(3)));
        Assert.InRange(result.NewTokens[0].Length, 1, 3); // an eos may end it early
        Assert.Equal([5, 17, 42, 7], result.Sequences[0][..4]);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}
