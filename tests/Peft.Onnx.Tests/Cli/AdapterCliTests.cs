using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>`train --batch` and `forward --adapter [--merge]` as the checks call them, and their one-line errors.</summary>
public class AdapterCliTests
{
    private static string Base(string arch) => Paths.Case(arch, "base_model");
    private static string Adapter(string arch, string method) => Paths.Case(arch, Path.Combine(method, "adapter"));
    private static string Inputs(string arch) => Path.Combine(Paths.Case(arch), "inputs.safetensors");
    private static SafeTensorsFile ReferenceFile(string arch, string method) => SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));

    private static double[] Losses(JsonElement meta, string name) => meta.GetProperty(name).EnumerateArray().Select(v => v.GetDouble()).ToArray();

    [Fact]
    public void Train_batch_writes_a_peft_adapter_that_matches_peft_and_loads()
    {
        var dir = Paths.TempDir();
        var outDir = Path.Combine(dir, "trained");
        var r = CliRunner.Run("train", "--base", Base("bloom"), "--adapter", Adapter("bloom", "lora"), "--out", outDir,
            "--batch", Inputs("bloom"), "--steps", "3", "--optimizer", "sgd", "--lr", "0.1", "--json", "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);

        // stdout is exactly one JSON object; progress went to stderr.
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(JsonValueKind.Object, json.ValueKind);
        Assert.Single(r.Stdout.Trim().Split('\n'));
        Assert.Equal(3, json.GetProperty("steps").GetInt32());
        var losses = json.GetProperty("losses").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        var expected = Losses(Reference.Meta("bloom", "lora"), "train_sgd_losses");
        Assert.Equal(expected.Length, losses.Length);
        for (int i = 0; i < losses.Length; i++) Tolerance.AssertLoss(expected[i], losses[i], $"loss before step {i + 1}");
        Assert.Contains("step 3/3", r.Stderr);

        // PEFT's format: adapter_config.json (inference_mode true) + adapter_model.safetensors with the trained state.
        var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(outDir, "adapter_config.json"))).RootElement;
        Assert.Equal("LORA", config.GetProperty("peft_type").GetString());
        Assert.True(config.GetProperty("inference_mode").GetBoolean());
        using (var saved = SafeTensorsFile.Open(Path.Combine(outDir, "adapter_model.safetensors")))
        using (var reference = ReferenceFile("bloom", "lora"))
        {
            var afterNames = reference.Names.Where(n => n.StartsWith("train_sgd.after.", StringComparison.Ordinal)).ToList();
            Assert.Equal(afterNames.Select(n => n["train_sgd.after.".Length..]).Order(StringComparer.Ordinal), saved.Names.Order(StringComparer.Ordinal));
            foreach (var name in afterNames)
                Tolerance.AssertLogits(reference.ReadFloat32(name), saved.ReadFloat32(name["train_sgd.after.".Length..]), 1, what: name);
        }

        // It loads: forward with the trained adapter gives PEFT's logits after training.
        var logitsFile = Path.Combine(dir, "logits.safetensors");
        var f = CliRunner.Run("forward", "--base", Base("bloom"), "--adapter", outDir, "--inputs", Inputs("bloom"), "--out", logitsFile, "--device", "cpu");
        Assert.True(f.ExitCode == 0, f.Stderr);
        using var got = SafeTensorsFile.Open(logitsFile);
        using var inputs = SafeTensorsFile.Open(Inputs("bloom"));
        using var reference2 = ReferenceFile("bloom", "lora");
        Tolerance.AssertLogits(reference2.ReadFloat32("train_sgd.logits_after"), got.ReadFloat32("logits"), 1000, Tolerance.RowsFromMask(inputs.ReadInt64("attention_mask")));
    }

    [Fact]
    public void Train_from_config_with_adamw_writes_an_adapter()
    {
        var dir = Paths.TempDir();
        var outDir = Path.Combine(dir, "fresh");
        var r = CliRunner.Run("train", "--base", Base("t5"), "--config", Path.Combine(Adapter("t5", "ia3"), "adapter_config.json"), "--out", outDir,
            "--batch", Inputs("t5"), "--steps", "2", "--optimizer", "adamw", "--lr", "0.01", "--betas", "0.9,0.999", "--eps", "1e-8", "--weight-decay", "0.01",
            "--seed", "3", "--json", "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(2, json.GetProperty("losses").GetArrayLength());
        Assert.Equal("adamw", json.GetProperty("optimizer").GetProperty("name").GetString());
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_config.json")));
    }

    [Fact]
    public void Forward_with_adapter_gives_real_token_logits_and_merge_matches_peft()
    {
        var dir = Paths.TempDir();
        using var inputs = SafeTensorsFile.Open(Inputs("bloom"));
        var rows = Tolerance.RowsFromMask(inputs.ReadInt64("attention_mask"));

        // A prompt method: PEFT's logits include the 8 virtual positions; forward writes the real tokens only.
        var prompt = Path.Combine(dir, "prompt.safetensors");
        var r = CliRunner.Run("forward", "--base", Base("bloom"), "--adapter", Adapter("bloom", "prompt_tuning_random"), "--inputs", Inputs("bloom"), "--out", prompt, "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (var got = SafeTensorsFile.Open(prompt))
        using (var reference = ReferenceFile("bloom", "prompt_tuning_random"))
        {
            Assert.Equal([2L, 10, 1000], got["logits"].Shape);
            var full = reference.ReadFloat32("logits"); // [2, 18, 1000]
            var real = Enumerable.Range(0, 2).SelectMany(b => full.AsSpan((b * 18 + 8) * 1000, 10 * 1000).ToArray()).ToArray();
            Tolerance.AssertLogits(real, got.ReadFloat32("logits"), 1000, rows);
            Tolerance.AssertLoss(reference.ReadFloat32("loss")[0], got.ReadFloat32("loss")[0]);
        }

        // LoRA merged into the base weights: PEFT's logits after merge_and_unload.
        var merged = Path.Combine(dir, "merged.safetensors");
        r = CliRunner.Run("forward", "--base", Base("bloom"), "--adapter", Adapter("bloom", "lora"), "--merge", "--inputs", Inputs("bloom"), "--out", merged, "--device", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (var got = SafeTensorsFile.Open(merged))
        using (var reference = ReferenceFile("bloom", "lora"))
        {
            Tolerance.AssertLogits(reference.ReadFloat32("logits_merged"), got.ReadFloat32("logits"), 1000, rows);
            Tolerance.AssertLoss(reference.ReadFloat32("loss_merged")[0], got.ReadFloat32("loss")[0]);
        }
    }

    public static TheoryData<string, string[]> BadInputs()
    {
        var data = new TheoryData<string, string[]>();
        var dir = Paths.TempDir();
        var outDir = Path.Combine(dir, "o");
        string[] Train(params string[] extra) =>
            ["train", "--base", Base("bloom"), "--adapter", Adapter("bloom", "lora"), "--batch", Inputs("bloom"), "--device", "cpu", .. extra];

        data.Add("missing --out", Train("--steps", "1", "--optimizer", "sgd", "--lr", "0.1"));
        data.Add("--optimizer 'adam' is not one of sgd, adamw", Train("--out", outDir, "--steps", "1", "--optimizer", "adam", "--lr", "0.1"));
        data.Add("--steps '0' must be an integer >= 1", Train("--out", outDir, "--steps", "0", "--optimizer", "sgd", "--lr", "0.1"));
        data.Add("--lr 'x' must be a number", Train("--out", outDir, "--steps", "1", "--optimizer", "sgd", "--lr", "x"));
        data.Add("--betas applies to adamw only", Train("--out", outDir, "--steps", "1", "--optimizer", "sgd", "--lr", "0.1", "--betas", "0.9,0.99"));
        data.Add("--betas '0.9' must be two numbers", Train("--out", outDir, "--steps", "1", "--optimizer", "adamw", "--lr", "0.1", "--betas", "0.9"));
        data.Add("exactly one of --adapter", ["train", "--base", Base("bloom"), "--out", outDir, "--batch", Inputs("bloom"), "--steps", "1", "--optimizer", "sgd", "--lr", "0.1"]);
        // Adapters made for other base models: an encoder-decoder adapter, and a GPT-2 LoRA whose targets BLOOM lacks.
        data.Add("task_type SEQ_2_SEQ_LM does not fit", ["train", "--base", Base("bloom"), "--adapter", Adapter("t5", "lora"), "--out", outDir,
            "--batch", Inputs("bloom"), "--steps", "1", "--optimizer", "sgd", "--lr", "0.1", "--device", "cpu"]);
        data.Add("c_attn", ["train", "--base", Base("bloom"), "--adapter", Adapter("gpt2", "lora"), "--out", outDir,
            "--batch", Inputs("bloom"), "--steps", "1", "--optimizer", "sgd", "--lr", "0.1", "--device", "cpu"]);
        // Batches the trainer cannot use: no labels, and causal labels that do not line up with input_ids.
        long[] ids = [5, 6, 7, 8, 9, 10], ones = [1, 1, 1, 1, 1, 1];
        var noLabels = Path.Combine(dir, "nolabels.safetensors");
        SafeTensorsWriter.Write(noLabels, [TensorData.FromInt64("input_ids", [2, 3], ids), TensorData.FromInt64("attention_mask", [2, 3], ones)]);
        data.Add("missing tensor 'labels'", ["train", "--base", Base("bloom"), "--adapter", Adapter("bloom", "lora"), "--batch", noLabels, "--out", outDir, "--steps", "1", "--optimizer", "sgd", "--lr", "0.1", "--device", "cpu"]);
        var shortLabels = Path.Combine(dir, "shortlabels.safetensors");
        SafeTensorsWriter.Write(shortLabels, [TensorData.FromInt64("input_ids", [2, 3], ids), TensorData.FromInt64("attention_mask", [2, 3], ones), TensorData.FromInt64("labels", [2, 2], [5, 6, 7, 8])]);
        data.Add("needs the shape of input_ids", ["train", "--base", Base("bloom"), "--adapter", Adapter("bloom", "lora"), "--batch", shortLabels, "--out", outDir, "--steps", "1", "--optimizer", "sgd", "--lr", "0.1", "--device", "cpu"]);
        data.Add("only LORA and IA3", ["forward", "--base", Base("bloom"), "--adapter", Adapter("bloom", "prefix"), "--merge", "--inputs", Inputs("bloom"), "--out", Path.Combine(dir, "x.safetensors"), "--device", "cpu"]);
        data.Add("--merge needs --adapter", ["forward", "--base", Base("bloom"), "--merge", "--inputs", Inputs("bloom"), "--out", Path.Combine(dir, "x.safetensors")]);
        return data;
    }

    [Theory, MemberData(nameof(BadInputs))]
    public void Bad_input_gives_one_line_error_and_nonzero_exit(string expected, string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.NotEqual(0, r.ExitCode);
        var errors = r.Stderr.Trim().Split('\n').Where(l => l.StartsWith("error: ")).ToList();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }
}
