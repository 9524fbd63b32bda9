using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// `train --batch ... --out DIR` killed with SIGKILL around its adapter save, over no folder, over an adapter of the same
/// method and over an adapter of another method with a README beside it: DIR always holds the old adapter or the new
/// one (or, for the instant of the swap, none, with the old one put back by the next run); never a mix or a stray file.
/// </summary>
public class AdapterSaveKillTests(ITestOutputHelper output)
{
    private const string LastStep = "step 2/2";
    private const string Wrote = "wrote the adapter";
    private static readonly string[] AdapterFiles = ["adapter_config.json", "adapter_model.safetensors"];

    private static string[] Args(string outDir) =>
    [
        "train", "--base", Paths.Case("bloom", "base_model"), "--adapter", Paths.Case("bloom", "lora/adapter"),
        "--batch", Path.Combine(Paths.Case("bloom"), "inputs.safetensors"), "--steps", "2", "--optimizer", "sgd", "--lr", "0.1",
        "--device", "cpu", "--out", outDir,
    ];

    /// <summary>What DIR holds before a kill: nothing, a copy of a fixture adapter, plus other files.</summary>
    private sealed record OldState(string Name, string? CopyOf, IReadOnlyDictionary<string, string> Extra)
    {
        public void CreateIn(string dir)
        {
            if (CopyOf is null) return;
            Directory.CreateDirectory(dir);
            foreach (var f in AdapterFiles) File.Copy(Path.Combine(CopyOf, f), Path.Combine(dir, f));
            foreach (var (name, text) in Extra) File.WriteAllText(Path.Combine(dir, name), text);
        }
    }

    [Fact]
    public void Kill_9_around_the_adapter_save_leaves_the_old_adapter_or_the_new_one()
    {
        var work = Paths.TempDir("peft-onnx-kill-adapter");
        var cpu = ChildRun.ChildrenCpu();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // Two uninterrupted runs (the first warms the caches) give the new state, equal each time, and the save's
            // timing: it starts when the staging folder appears beside DIR and has ended by the "wrote the adapter" line.
            var reference = Path.Combine(work, "reference");
            var first = ChildRun.Run(Args(Path.Combine(work, "warm-up")));
            Assert.True(first.ExitCode == 0, first.Stderr);
            var calibration = ChildRun.Run(Args(reference), new KillAt(TimeSpan.FromMinutes(10), Appears: pid => FolderSnapshot.StagingBeside(reference, pid).Count > 0));
            Assert.True(calibration.ExitCode == 0 && !calibration.Killed, calibration.Stderr);
            var written = FolderSnapshot.Of(reference)!;
            Assert.True(written.SameAs(FolderSnapshot.Of(Path.Combine(work, "warm-up"))), "two uninterrupted runs wrote different adapters");
            Assert.Equal(AdapterFiles, written.Files.Keys.Order(StringComparer.Ordinal));
            AssertValidAdapter(reference);
            double Line(string text) => calibration.LineAt(text) ?? throw new Xunit.Sdk.XunitException($"no '{text}' line:\n{calibration.Stderr}");
            double staged = calibration.TriggerMilliseconds ?? throw new Xunit.Sdk.XunitException("the staging folder was never seen");
            double lastStepToSaved = Line(Wrote) - Line(LastStep), stagedToSaved = Math.Max(1, Line(Wrote) - staged);
            output.WriteLine($"PEFT_KILL_SEED={KillSettings.BaseSeed} PEFT_KILL_COUNT={KillSettings.Count}; uninterrupted run {calibration.Milliseconds:F0} ms, " +
                $"last step to saved {lastStepToSaved:F0} ms, staging folder to saved {stagedToSaved:F0} ms");

            OldState[] olds =
            [
                new("none", null, new Dictionary<string, string>()),
                new("lora adapter", Paths.Case("bloom", "lora/adapter"), new Dictionary<string, string>()),
                new("ia3 adapter + README", Paths.Case("bloom", "ia3/adapter"), new Dictionary<string, string> { ["README.md"] = "# an older adapter\n" }),
            ];
            var outcomes = new Dictionary<string, int>();
            var failures = new List<string>();
            var dirs = new List<(string Dir, FolderSnapshot Expected)>();
            int kills = 0;
            foreach (int i in KillSettings.Attempts(() => kills))
            {
                var random = KillSettings.For("adapter", i);
                var old = olds[i % olds.Length];
                var dir = Path.Combine(work, $"kill-{i}", "adapter");
                old.CreateIn(dir);
                var before = FolderSnapshot.Of(dir);
                var expectedNew = WithExtras(written, old.Extra);
                // Half the kills aim inside the save (from the staging folder's appearance), a quarter at the span from the
                // last step to the save, a quarter anywhere in the run.
                var kill = random.Next(4) switch
                {
                    < 2 => new KillAt(random.LogUniform(stagedToSaved * 1.2), Appears: pid => FolderSnapshot.StagingBeside(dir, pid).Count > 0),
                    2 => new KillAt(random.LogUniform(lastStepToSaved * 1.2), Line: LastStep),
                    _ => new KillAt(TimeSpan.FromMilliseconds(random.NextDouble() * calibration.Milliseconds)),
                };
                var run = ChildRun.Run(Args(dir), kill);
                if (run.Killed) kills++;

                var after = FolderSnapshot.Of(dir);
                string outcome = after is null
                    ? (before is null ? "absent (as before)" : FolderSnapshot.StagingBeside(dir).Any(p => p.EndsWith(".old", StringComparison.Ordinal)) ? "absent (mid-swap, old kept aside)" : "LOST")
                    : after.SameAs(before) ? "old"
                    : after.SameAs(expectedNew) ? "new"
                    : "PARTIAL";
                if (!run.Killed && run.ExitCode != 0) outcome = $"EXIT {run.ExitCode}";
                output.WriteLine($"kill {i} (seed {KillSettings.Seed("adapter", i)}, over {old.Name}): {kill} -> {(run.Killed ? "killed" : "exited")} at {run.Milliseconds:F0} ms, {FolderSnapshot.Leftovers(dir)} staging/temp leftovers: {outcome}");
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (outcome is "LOST" or "PARTIAL" || outcome.StartsWith("EXIT", StringComparison.Ordinal))
                    failures.Add($"kill {i} (PEFT_KILL_CASE={i}, over {old.Name}, {kill}): {outcome}: {after?.Describe() ?? "no folder"}");
                try
                {
                    FolderSnapshot.AssertOnlyStagingNamesHidden(dir, $"kill {i}");
                    Assert.All(FolderSnapshot.StagingBeside(dir), p => Assert.Matches(@"\.[0-9]+\.[0-9a-f]{32}\.(tmp|old|del)$", p));
                    if (after is not null && outcome == "new") AssertValidAdapter(dir);
                }
                catch (Exception e) { failures.Add($"kill {i} (PEFT_KILL_CASE={i}): {e.Message}"); }
                dirs.Add((dir, expectedNew));
            }
            output.WriteLine($"{kills} kills; outcomes: " + string.Join(", ", outcomes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}")));

            // A later save into a killed run's folder succeeds and clears what the killed one left (one per kind of old state).
            foreach (var (dir, expected) in dirs.TakeLast(olds.Length))
            {
                var rerun = ChildRun.Run(Args(dir));
                Assert.True(rerun.ExitCode == 0, rerun.Stderr);
                Assert.True(expected.SameAs(FolderSnapshot.Of(dir)), $"{dir} after a rerun: {FolderSnapshot.Of(dir)?.Describe()}");
                Assert.Empty(FolderSnapshot.StagingBeside(dir));
                Assert.Empty(Directory.EnumerateFileSystemEntries(dir, ".*"));
            }
            Assert.True(failures.Count == 0, $"PEFT_KILL_SEED={KillSettings.BaseSeed}: " + string.Join(" | ", failures));
        }
        finally
        {
            output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s; the child processes used {(ChildRun.ChildrenCpu() - cpu).TotalSeconds:F1} s of CPU (with those of tests running beside this one)");
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    private static FolderSnapshot WithExtras(FolderSnapshot adapter, IReadOnlyDictionary<string, string> extra)
    {
        var dir = Paths.TempDir("peft-onnx-kill-expected");
        try
        {
            foreach (var (name, bytes) in adapter.Files) File.WriteAllBytes(Path.Combine(dir, name), bytes);
            foreach (var (name, text) in extra) File.WriteAllText(Path.Combine(dir, name), text);
            return FolderSnapshot.Of(dir)!;
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Both files parse, and the config describes the tensors: LoRA A/B pairs of rank r on the target modules.</summary>
    internal static void AssertValidAdapter(string dir)
    {
        var config = Assert.IsType<LoraConfig>(AdapterConfig.Load(Path.Combine(dir, "adapter_config.json")));
        using var weights = SafeTensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        Assert.NotEmpty(weights.Names);
        foreach (var name in weights.Names)
        {
            Assert.Contains(config.TargetModules!.Names!, m => name.Contains("." + m + ".", StringComparison.Ordinal));
            var shape = weights[name].Shape;
            Assert.Equal(config.R, name.Contains("lora_A", StringComparison.Ordinal) ? shape[0] : shape[1]);
            Assert.All(weights.ReadFloat32(name), v => Assert.True(float.IsFinite(v)));
        }
    }
}
