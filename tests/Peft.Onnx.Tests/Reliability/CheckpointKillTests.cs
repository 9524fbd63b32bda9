using System.Text.Json;
using PhrasebankSlice = Peft.Onnx.Tests.Finetune.FinetuneData;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Finetune;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Reliability;

/// <summary>
/// `train --data` on a few phrasebank rows killed with SIGKILL again and again: during epochs, while it writes
/// metrics.jsonl and a checkpoint, while it writes the final adapter, and while a fresh run clears an older run's
/// checkpoints. After every kill the checkpoints folder holds only complete checkpoints, each equal to the uninterrupted
/// run's checkpoint of that epoch; `--resume` then carries on, and the run ends with the uninterrupted run's adapter,
/// metrics and optimizer state, bit for bit.
/// </summary>
public class CheckpointKillTests(ITestOutputHelper output)
{
    private const int Epochs = 3;
    private static readonly string[] CheckpointFiles =
        ["adapter_config.json", "adapter_model.safetensors", FinetuneCheckpoint.OptimizerFile, FinetuneCheckpoint.StateFile, FinetuneCheckpoint.TorchRngFile];

    private static string[] Args(string train, string validation, string outDir) =>
    [
        "train", "--base", PhrasebankSlice.Bloom, "--data", train, "--validation", validation, "--seed", "42",
        "--text-column", "text", "--label-column", "label", "--method", "lora", "--r", "2", "--lora-alpha", "4",
        "--target-modules", "query_key_value", "--lr", "5e-3", "--epochs", Epochs.ToString(), "--batch-size", "2",
        "--max-length", "48", "--device", "cpu", "--out", outDir,
    ];

    [Fact]
    public void Kill_9_during_training_leaves_complete_checkpoints_and_resume_ends_where_an_uninterrupted_run_ends()
    {
        var (work, train, validation) = PhrasebankSlice.Write(train: 4, validation: 2);
        var cpu = ChildRun.ChildrenCpu();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var whole = Path.Combine(work, "whole");
            var calibration = ChildRun.Run(Args(train, validation, whole));
            Assert.True(calibration.ExitCode == 0, calibration.Stderr);
            var reference = Reference.Read(whole);
            // Phases of the uninterrupted run: an epoch's checkpoint is written between its "generate" line and its summary line,
            // the final adapter and plot between the last "generate" line and the "final accuracy" line.
            double Line(string text) => calibration.LineAt(text) ?? throw new Xunit.Sdk.XunitException($"no '{text}' line:\n{calibration.Stderr}");
            double checkpointWindow = Line("epoch 1: ") - Line("epoch 1/3 generate");
            double endWindow = Line("final accuracy") - Line($"epoch {Epochs}/{Epochs} generate");
            double startup = Line("epoch 1/3 batch 1/"), perEpoch = (Line("final accuracy") - startup) / Epochs;
            output.WriteLine($"PEFT_KILL_SEED={KillSettings.BaseSeed} PEFT_KILL_COUNT={KillSettings.Count}; uninterrupted run {calibration.Milliseconds:F0} ms, " +
                $"metrics + checkpoint {checkpointWindow:F0} ms, final adapter + plot {endWindow:F0} ms");

            var cut = Path.Combine(work, "cut");
            var failures = new List<string>();
            var outcomes = new Dictionary<string, int>();
            bool resume = false;
            int done = 0;
            int completedRuns = 0;
            int kills = 0;
            foreach (int i in KillSettings.Attempts(() => kills))
            {
                var random = KillSettings.For("checkpoint", i);
                var checkpointsDir = Path.Combine(cut, FinetuneCheckpoint.Folder);
                bool allEpochsDone = resume && done == Epochs; // such a run only writes the final adapter and plot
                var kill = (allEpochsDone ? 4 + random.Next(6) : random.Next(10)) switch
                {
                    // Inside a checkpoint's write: from its staging folder's appearance.
                    < 4 => new KillAt(random.LogUniform(checkpointWindow), Appears: pid => FolderSnapshot.StagingIn(checkpointsDir, pid)),
                    // Inside the final adapter's write (staged beside OUT) or the plot's after it.
                    < 7 => new KillAt(random.LogUniform(endWindow), Appears: pid => FolderSnapshot.StagingBeside(cut, pid).Count > 0),
                    // Anywhere in what is left of the run: the start-up, then the epochs after the last checkpoint.
                    _ => new KillAt(TimeSpan.FromMilliseconds(random.NextDouble() * (startup + (Epochs - (resume ? done : 0)) * perEpoch))),
                };
                string[] args = resume ? [.. Args(train, validation, cut), "--resume"] : Args(train, validation, cut);
                var run = ChildRun.Run(args, kill);
                if (run.Killed) kills++;
                var checkpoints = done = CompleteCheckpoints(cut, reference, out var problems);
                string outcome = run.Killed ? $"killed, {checkpoints} checkpoint(s)" : run.ExitCode == 0 ? "completed" : $"EXIT {run.ExitCode}";
                output.WriteLine($"kill {i} (seed {KillSettings.Seed("checkpoint", i)}, {(resume ? "--resume" : "fresh run")}): {kill} -> {outcome} at {run.Milliseconds:F0} ms, {FolderSnapshot.Leftovers(cut)} staging/temp leftovers");
                outcomes[outcome.Split(',')[0]] = outcomes.GetValueOrDefault(outcome.Split(',')[0]) + 1;
                if (!run.Killed && run.ExitCode != 0) problems.Add($"exit code {run.ExitCode}: {run.Stderr.Trim().Split('\n')[^1]}");
                if (!run.Killed && run.ExitCode == 0) problems.AddRange(reference.Differences(cut));
                failures.AddRange(problems.Select(p => $"kill {i} (PEFT_KILL_CASE={i}, {kill}): {p}"));
                // A finished run is started afresh over its own folder (which clears its checkpoints, kills included).
                if (!run.Killed && run.ExitCode == 0) completedRuns++;
                resume = run.Killed;
            }
            output.WriteLine($"{kills} kills; outcomes: " + string.Join(", ", outcomes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}")));

            // The last word: --resume after the last kill runs to the end, equal to the uninterrupted run, and leaves no leftovers.
            var final = ChildRun.Run([.. Args(train, validation, cut), "--resume"]);
            Assert.True(final.ExitCode == 0, final.Stderr);
            failures.AddRange(reference.Differences(cut).Select(p => "after the final --resume: " + p));
            Assert.Empty(Directory.EnumerateFileSystemEntries(cut, ".*", SearchOption.AllDirectories));
            Assert.Empty(FolderSnapshot.StagingBeside(cut));
            Assert.True(failures.Count == 0, $"PEFT_KILL_SEED={KillSettings.BaseSeed}: " + string.Join(" | ", failures));
        }
        finally
        {
            output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s; the child processes used {(ChildRun.ChildrenCpu() - cpu).TotalSeconds:F1} s of CPU (with those of tests running beside this one)");
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Counts the checkpoints in OUT/checkpoints, noting in <paramref name="problems"/> any that is not complete and equal to
    /// the uninterrupted run's, a metrics.jsonl that is not a prefix of the uninterrupted one, an adapter in OUT that is not
    /// the final one, and hidden names that are not staging names.
    /// </summary>
    private static int CompleteCheckpoints(string outDir, Reference reference, out List<string> problems)
    {
        problems = [];
        int count = 0;
        var root = Path.Combine(outDir, FinetuneCheckpoint.Folder);
        if (Directory.Exists(root))
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(root).Where(e => !Path.GetFileName(e).StartsWith('.')))
            {
                var name = Path.GetFileName(entry);
                int epoch = name.StartsWith("epoch-", StringComparison.Ordinal) && int.TryParse(name[6..], out var e) ? e : 0;
                if (epoch < 1 || epoch > Epochs || !Directory.Exists(entry)) { problems.Add($"unexpected checkpoints/{name}"); continue; }
                var files = Directory.GetFiles(entry).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                if (!files.SequenceEqual(CheckpointFiles.Order(StringComparer.Ordinal)))
                {
                    problems.Add($"checkpoints/{name} holds {string.Join(", ", files)}");
                    continue;
                }
                foreach (var f in CheckpointFiles.Where(f => f != FinetuneCheckpoint.StateFile))
                    if (!File.ReadAllBytes(Path.Combine(entry, f)).AsSpan().SequenceEqual(reference.CheckpointFile(epoch, f)))
                        problems.Add($"checkpoints/{name}/{f} differs from the uninterrupted run's");
                var state = FinetuneCheckpoint.ReadState(entry);
                if (state.Epoch != epoch || state.Metrics.Count != epoch) problems.Add($"checkpoints/{name}/state.json says epoch {state.Epoch} with {state.Metrics.Count} metrics records");
                count++;
            }
        }
        var metricsPath = Path.Combine(outDir, FinetuneRun.MetricsFile);
        if (File.Exists(metricsPath))
        {
            var lines = File.ReadAllLines(metricsPath).Select(Reference.WithoutTimes).ToList();
            if (lines.Count > Epochs || !lines.SequenceEqual(reference.Metrics.Take(lines.Count)))
                problems.Add($"metrics.jsonl ({lines.Count} records) is not a prefix of the uninterrupted run's");
        }
        if (File.Exists(Path.Combine(outDir, "adapter_config.json")) && !reference.SameAdapter(outDir))
            problems.Add("OUT holds an adapter_config.json whose adapter is not the final one");
        try { FolderSnapshot.AssertOnlyStagingNamesHidden(outDir, outDir); }
        catch (Exception e) { problems.Add(e.Message); }
        return count;
    }

    /// <summary>What the uninterrupted run wrote.</summary>
    private sealed class Reference
    {
        private readonly string _dir;
        public List<string> Metrics { get; }

        private Reference(string dir)
        {
            _dir = dir;
            Metrics = File.ReadAllLines(Path.Combine(dir, FinetuneRun.MetricsFile)).Select(WithoutTimes).ToList();
        }

        public static Reference Read(string dir)
        {
            var reference = new Reference(dir);
            Assert.Equal(Epochs, reference.Metrics.Count);
            for (int e = 1; e <= Epochs; e++) Assert.True(Directory.Exists(FinetuneCheckpoint.EpochDir(dir, e)));
            return reference;
        }

        public byte[] CheckpointFile(int epoch, string file) => File.ReadAllBytes(Path.Combine(FinetuneCheckpoint.EpochDir(_dir, epoch), file));

        public bool SameAdapter(string dir) =>
            new[] { "adapter_config.json", "adapter_model.safetensors" }.All(f =>
                File.Exists(Path.Combine(dir, f)) && File.ReadAllBytes(Path.Combine(dir, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(_dir, f))));

        /// <summary>How a finished run in <paramref name="dir"/> differs from the uninterrupted one (nothing, when it ended where it did).</summary>
        public IEnumerable<string> Differences(string dir)
        {
            if (!SameAdapter(dir)) yield return "the final adapter differs from the uninterrupted run's";
            var metrics = File.ReadAllLines(Path.Combine(dir, FinetuneRun.MetricsFile)).Select(WithoutTimes).ToList();
            if (!metrics.SequenceEqual(Metrics)) yield return $"metrics.jsonl differs from the uninterrupted run's:\n{string.Join("\n", metrics)}\nvs\n{string.Join("\n", Metrics)}";
            var optimizer = Path.Combine(FinetuneCheckpoint.EpochDir(dir, Epochs), FinetuneCheckpoint.OptimizerFile);
            if (!File.Exists(optimizer) || !File.ReadAllBytes(optimizer).AsSpan().SequenceEqual(CheckpointFile(Epochs, FinetuneCheckpoint.OptimizerFile)))
                yield return "the last checkpoint's optimizer state differs from the uninterrupted run's";
        }

        /// <summary>A metrics record without its timings (they differ between any two runs).</summary>
        public static string WithoutTimes(string line)
        {
            using var doc = JsonDocument.Parse(line);
            return JsonSerializer.Serialize(doc.RootElement.EnumerateObject().Where(p => !p.Name.EndsWith("seconds", StringComparison.Ordinal))
                .ToDictionary(p => p.Name, p => p.Value));
        }
    }
}
