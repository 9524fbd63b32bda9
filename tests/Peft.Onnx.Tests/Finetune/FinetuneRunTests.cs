using System.Text.Json;
using Peft.Onnx.Cli;
using Peft.Onnx.Cli.Commands;
using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Finetune;
using Xunit;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>`train --data` end to end on 24 phrasebank rows: outputs, a falling loss, resume equivalence, bad input.</summary>
public class FinetuneRunTests
{
    private static int Train(params string[] args)
    {
        var train = new TrainCommand();
        return train.Run(VerbLine.Parse(train, args));
    }

    private static string[] LoraArgs(string baseDir, string train, string validation, string outDir, int epochs = 2) =>
    [
        "--base", baseDir, "--data", train, "--validation", validation, "--seed", "42",
        "--text-column", "text", "--label-column", "label", "--method", "lora", "--r", "8", "--lora-alpha", "16",
        "--lr", "5e-3", "--epochs", epochs.ToString(), "--batch-size", "8", "--out", outDir, "--device", "cpu",
    ];

    private static List<JsonElement> Metrics(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, FinetuneRun.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    /// <summary>A record without its timings (they differ between any two runs).</summary>
    private static string WithoutTimes(JsonElement record) =>
        JsonSerializer.Serialize(record.EnumerateObject().Where(p => !p.Name.EndsWith("seconds", StringComparison.Ordinal))
            .ToDictionary(p => p.Name, p => p.Value));

    [Fact]
    public void Lora_run_lowers_the_loss_and_writes_adapter_metrics_plot_and_checkpoints()
    {
        var (dir, train, validation) = FinetuneData.Write();
        var outDir = Path.Combine(dir, "out");
        Assert.Equal(0, Train(LoraArgs(FinetuneData.Bloom, train, validation, outDir)));

        Assert.True(File.Exists(Path.Combine(outDir, "adapter_config.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        var png = File.ReadAllBytes(Path.Combine(outDir, "loss.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        foreach (var epoch in new[] { 1, 2 })
        {
            var ckpt = FinetuneCheckpoint.EpochDir(outDir, epoch);
            foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors", FinetuneCheckpoint.OptimizerFile, FinetuneCheckpoint.StateFile })
                Assert.True(File.Exists(Path.Combine(ckpt, f)), $"{ckpt}/{f}");
        }
        Assert.Empty(Directory.GetDirectories(Path.Combine(outDir, "checkpoints"), ".*"));

        var metrics = Metrics(outDir);
        Assert.Equal(2, metrics.Count);
        foreach (var key in new[] { "epoch", "train_loss", "train_ppl", "eval_loss", "eval_ppl", "eval_accuracy", "seconds", "lr" })
            Assert.True(metrics[0].TryGetProperty(key, out _), key);
        double loss1 = metrics[0].GetProperty("train_loss").GetDouble(), loss2 = metrics[1].GetProperty("train_loss").GetDouble();
        Assert.True(loss2 < loss1, $"train loss {loss1} -> {loss2}");
        Assert.True(metrics[1].GetProperty("eval_loss").GetDouble() < metrics[0].GetProperty("eval_loss").GetDouble() + 1e-9 || loss2 < loss1);
        Assert.Equal(Math.Exp(loss1), metrics[0].GetProperty("train_ppl").GetDouble(), 6);
        var accuracy = metrics[1].GetProperty("eval_accuracy").GetDouble();
        Assert.InRange(accuracy, 0, 1);
        Assert.Equal(16, metrics[1].GetProperty("eval_rows").GetInt32());
        // 24 rows, batch 8, 2 epochs: 6 steps of a linear decay to 0; the last step runs at lr * 1/6.
        Assert.Equal(6, metrics[1].GetProperty("optimizer_steps").GetInt64());
        Assert.Equal(5e-3 / 6, metrics[1].GetProperty("lr").GetDouble(), 12);
    }

    [Fact]
    public void Resume_after_an_interruption_ends_where_an_uninterrupted_run_ends()
    {
        var (dir, train, validation) = FinetuneData.Write(train: 16, validation: 8);
        var whole = Path.Combine(dir, "whole");
        var cut = Path.Combine(dir, "cut");
        Assert.Equal(0, Train(LoraArgs(FinetuneData.Bloom, train, validation, whole)));
        Assert.Equal(0, Train([.. LoraArgs(FinetuneData.Bloom, train, validation, cut), "--stop-after-epoch", "1"]));
        Assert.False(File.Exists(Path.Combine(cut, "adapter_model.safetensors")));
        Assert.Single(Metrics(cut));
        Assert.Equal(0, Train([.. LoraArgs(FinetuneData.Bloom, train, validation, cut), "--resume"]));

        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(cut, "adapter_model.safetensors")));
        Assert.Equal(Metrics(whole).Select(WithoutTimes), Metrics(cut).Select(WithoutTimes));
        Assert.Equal(File.ReadAllBytes(Path.Combine(FinetuneCheckpoint.EpochDir(whole, 2), FinetuneCheckpoint.OptimizerFile)),
            File.ReadAllBytes(Path.Combine(FinetuneCheckpoint.EpochDir(cut, 2), FinetuneCheckpoint.OptimizerFile)));

        // Other settings are refused rather than silently mixed.
        var ex = Assert.Throws<PeftOnnxException>(() => Train([.. LoraArgs(FinetuneData.Bloom, train, validation, cut, epochs: 3), "--resume"]));
        Assert.Contains("epochs", ex.Message);
    }

    [Fact]
    public void Prompt_tuning_on_t5_runs_and_resumes_its_encoder()
    {
        var (dir, train, validation) = FinetuneData.Write(train: 8, validation: 4);
        string[] Args(string outDir) =>
        [
            "--base", FinetuneData.T5, "--data", train, "--validation", validation, "--text-column", "text", "--label-column", "label",
            "--method", "prompt_tuning", "--num-virtual-tokens", "4", "--lr", "3e-2", "--epochs", "2", "--batch-size", "4", "--out", outDir,
        ];
        var whole = Path.Combine(dir, "whole");
        var cut = Path.Combine(dir, "cut");
        Assert.Equal(0, Train(Args(whole)));
        Assert.Equal(0, Train([.. Args(cut), "--stop-after-epoch", "1"]));
        Assert.Equal(0, Train([.. Args(cut), "--resume"]));
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(cut, "adapter_model.safetensors")));
        Assert.Equal(2, Metrics(whole).Count);
    }

    [Fact]
    public void Missing_column_lists_the_columns()
    {
        var (dir, train, validation) = FinetuneData.Write(4, 4);
        var args = LoraArgs(FinetuneData.Bloom, train, validation, Path.Combine(dir, "o"));
        args[Array.IndexOf(args, "--label-column") + 1] = "sentiment";
        var ex = Assert.Throws<PeftOnnxException>(() => Train(args));
        Assert.Contains("no column 'sentiment'", ex.Message);
        Assert.Contains("'idx', 'text', 'label'", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Empty_file_is_an_error()
    {
        var (dir, _, validation) = FinetuneData.Write(4, 4);
        var empty = Path.Combine(dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        var ex = Assert.Throws<PeftOnnxException>(() => Train(LoraArgs(FinetuneData.Bloom, empty, validation, Path.Combine(dir, "o"))));
        Assert.Contains("no data rows", ex.Message);
    }

    [Fact]
    public void Template_without_text_placeholder_is_an_error()
    {
        var (dir, train, validation) = FinetuneData.Write(4, 4);
        var ex = Assert.Throws<PeftOnnxException>(() => Train([.. LoraArgs(FinetuneData.Bloom, train, validation, Path.Combine(dir, "o")), "--template", "Label : "]));
        Assert.Contains("{text}", ex.Message);
    }

    [Fact]
    public void Model_folder_without_tokenizer_is_an_error()
    {
        var (dir, train, validation) = FinetuneData.Write(4, 4);
        var model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(FinetuneData.Bloom, "config.json"), Path.Combine(model, "config.json"));
        var ex = Assert.Throws<PeftOnnxException>(() => Train(LoraArgs(model, train, validation, Path.Combine(dir, "o"))));
        Assert.Contains("no tokenizer found", ex.Message);
    }

    [Fact]
    public void Unknown_method_is_an_error()
    {
        var (dir, train, validation) = FinetuneData.Write(4, 4);
        var args = LoraArgs(FinetuneData.Bloom, train, validation, Path.Combine(dir, "o"));
        args[Array.IndexOf(args, "--method") + 1] = "xlora";
        var ex = Assert.Throws<PeftOnnxException>(() => Train(args));
        Assert.Contains("--method 'xlora' is not one of lora, ia3, prompt_tuning, p_tuning, prefix_tuning", ex.Message);
    }

    [Fact]
    public void Validation_labels_outside_the_training_labels_are_counted_not_fatal()
    {
        var (dir, train, _) = FinetuneData.Write(8, 0); // its first rows are labelled neutral
        var validation = Path.Combine(dir, "odd.jsonl");
        File.WriteAllLines(validation, [
            """{"text": "The sales price was not disclosed .", "label": "neutral"}""",
            """{"text": "Sales rose .", "label": "very positive"}""",
        ]);
        var outDir = Path.Combine(dir, "o");
        var args = LoraArgs(FinetuneData.Bloom, train, validation, outDir, epochs: 1);
        Assert.Equal(0, Train(args));
        Assert.Equal(1, Metrics(outDir)[0].GetProperty("unknown_labels").GetInt32());
    }
}
