using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// Every fixture case (6 archs x 9 methods) compiled with OnnxExport.Export (LoRA/IA3 merged, prompt methods baked)
/// and run by the Runtime: greedy generation equals PEFT's generate (meta.json "generated") token for token. Each
/// export is written once per test run (<see cref="ExportedModels.Adapter"/>) and loaded once on the CPU.
/// </summary>
public class AdapterGenerationParityTests(ITestOutputHelper output)
{
    public static readonly TheoryData<string, string> Cases = AllCases();

    private static TheoryData<string, string> AllCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var arch in Paths.Archs)
            foreach (var method in Paths.Methods) data.Add(arch, method);
        return data;
    }

    private static int[] GenInput(string arch)
    {
        using var reference = new Reference(arch);
        return reference.Inputs.ReadInt64("gen_input_ids").Select(v => (int)v).ToArray();
    }

    private static int[] Expected(string arch, string method) =>
        Reference.Rows(Reference.Meta(arch, method).GetProperty("generated"))[0].Select(v => (int)v).ToArray();

    private static int NewTokens(string arch, int[] expected) =>
        arch is "t5" or "mt5" ? expected.Length - 1 : expected.Length - GenInput(arch).Length;

    [Theory]
    [MemberData(nameof(Cases))]
    public void Greedy_generation_of_the_export_equals_peft(string arch, string method)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        var expected = Expected(arch, method);
        int newTokens = NewTokens(arch, expected);
        Assert.Equal(6, newTokens);
        var result = model.Generate(GenerationRequest.FromIds(GenInput(arch), GenerationOptions.Greedy(newTokens)));
        Assert.Equal(expected, result.Sequences[0]);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public void Unmerged_lora_generates_as_merged(string arch)
    {
        var model = ExportedModels.Adapter(arch, "lora", new ExportOptions { Verify = false, Merge = false });
        var expected = Expected(arch, "lora");
        var result = model.Generate(GenerationRequest.FromIds(GenInput(arch), GenerationOptions.Greedy(NewTokens(arch, expected))));
        Assert.Equal(expected, result.Sequences[0]);
    }

    [Fact]
    public void Fp16_export_runs_through_the_runtime()
    {
        const string arch = "gpt2";
        var model = ExportedModels.Adapter(arch, "lora", new ExportOptions { Verify = false, DType = ExportDType.Fp16 });
        var expected = Expected(arch, "lora");
        var prompt = GenInput(arch);
        var result = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(NewTokens(arch, expected))));
        // fp16 rounding may flip a near tie of the random tiny model: the prompt and the length must match, every id must be in the vocabulary
        int agree = expected.Zip(result.Sequences[0]).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"fp16 gpt2/lora: {agree - prompt.Length} of {expected.Length - prompt.Length} new tokens equal fp32 PEFT's");
        // measured on ORT's CPU provider: fp16 rounding flips no arg-max of this case, so the tokens are PEFT's (fp32) ones
        Assert.Equal(expected, result.Sequences[0]);
    }

    [Theory]
    [InlineData("gpt2", "prompt_tuning_text", false)]
    [InlineData("llama", "prefix", false)]
    [InlineData("gpt2", "lora", true)]
    public void Genai_config_lists_position_ids_only_when_the_graph_takes_them(string arch, string method, bool expected)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        var genai = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(model.Directory, GenAiConfig.FileName)))!;
        Assert.Equal(expected, genai["model"]!["decoder"]!["inputs"]!.AsObject().ContainsKey("position_ids"));
    }

    [Fact]
    public void Fp16_seq2seq_export_runs_through_the_runtime()
    {
        const string arch = "t5";
        var model = ExportedModels.Adapter(arch, "prompt_tuning_text", new ExportOptions { Verify = false, DType = ExportDType.Fp16 });
        var expected = Expected(arch, "prompt_tuning_text");
        var result = model.Generate(GenerationRequest.FromIds(GenInput(arch), GenerationOptions.Greedy(NewTokens(arch, expected))));
        int agree = expected.Zip(result.Sequences[0]).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"fp16 t5/prompt_tuning_text: {agree - 1} of {expected.Length - 1} new tokens equal fp32 PEFT's");
        // fp16 rounding may flip a near tie of the tiny random model: the length and the vocabulary are what must hold
        Assert.Equal(expected.Length, result.Sequences[0].Length);
        Assert.All(result.Sequences[0], id => Assert.InRange(id, 0, model.VocabSize - 1));
    }

    [Theory]
    [InlineData("gpt2", "prompt_tuning_text")]
    [InlineData("llama", "prefix")]
    [InlineData("bloom", "p_tuning_mlp")]
    [InlineData("opt", "prefix")]
    public void Runtime_runs_the_prefix_in_cache_graph_and_model_onnx_alone_generates_the_same(string arch, string method)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        Assert.Equal(CausalLmContract.PrefixInCacheFile, CausalLmGraph.FileIn(model.Directory));
        // the folder as ORT GenAI reads it: model.onnx (real tokens only in the cache) and its data file
        var alone = Path.Combine(Path.GetTempPath(), $"peft-onnx-genai-graph-{Guid.NewGuid():N}");
        Directory.CreateDirectory(alone);
        try
        {
            foreach (var f in Directory.GetFiles(model.Directory).Where(f => Path.GetFileName(f) != CausalLmContract.PrefixInCacheFile))
                File.Copy(f, Path.Combine(alone, Path.GetFileName(f)));
            Assert.Equal(CausalLmContract.ModelFile, CausalLmGraph.FileIn(alone));
            using var genaiGraph = OnnxModel.Load(alone, DeviceOptions.Cpu);
            var prompt = GenInput(arch);
            // two rows of different lengths (the shorter left-padded), greedy, 8 new tokens
            var request = GenerationRequest.FromIds([prompt, prompt[..^2]], GenerationOptions.Greedy(8));
            var expected = model.Generate(request);
            var actual = genaiGraph.Generate(request);
            Assert.Equal(expected.Sequences, actual.Sequences);
        }
        finally
        {
            Directory.Delete(alone, true);
        }
    }

    [Theory]
    [InlineData("gpt2", "prompt_tuning_text")]
    [InlineData("llama", "prefix")]
    public void Baked_virtual_tokens_take_their_positions_of_the_context(string arch, string method)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        int virtualTokens = Reference.Meta(arch, method).GetProperty("peft_config").GetProperty("num_virtual_tokens").GetInt32();
        int context = model.ContextLength!.Value;
        var fits = Enumerable.Range(0, context - virtualTokens - 1).Select(i => 5 + i % 100).ToArray();
        var result = model.Generate(GenerationRequest.FromIds(fits, GenerationOptions.Greedy(10)));
        Assert.Single(result.NewTokens[0]);
        var ex = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds([.. fits, 5], GenerationOptions.Greedy(10))));
        Assert.Contains($"{virtualTokens} virtual tokens", ex.Message);
    }

    [Fact]
    public void Export_checks_run_fp16_and_prompted_encoder_exports()
    {
        // the copy-in/copy-out runners of the exporter take the caches' element type and the encoder outputs' length from the graphs
        var fp16 = ExportedModels.Adapter("gpt2", "lora", new ExportOptions { Verify = false, DType = ExportDType.Fp16 });
        Assert.Equal([2, 3, fp16.VocabSize], Peft.Onnx.Exporter.Onnx.OnnxCheck.CausalLm(Path.Combine(fp16.Directory, "model.onnx")).PrefillLogitsShape);
        var baked = ExportedModels.Adapter("gpt2", "prompt_tuning_text", new ExportOptions { Verify = false });
        Assert.Equal([2, 1, baked.VocabSize], Peft.Onnx.Exporter.Onnx.OnnxCheck.CausalLm(Path.Combine(baked.Directory, "model.onnx")).DecodeLogitsShape);
        foreach (var dtype in new[] { ExportDType.Fp32, ExportDType.Fp16 })
        {
            var t5 = ExportedModels.Adapter("t5", "prompt_tuning_text", new ExportOptions { Verify = false, DType = dtype });
            int virtualTokens = Reference.Meta("t5", "prompt_tuning_text").GetProperty("peft_config").GetProperty("num_virtual_tokens").GetInt32();
            var report = Peft.Onnx.Exporter.Onnx.OnnxCheck.Seq2Seq(Path.Combine(t5.Directory, "encoder_model.onnx"), Path.Combine(t5.Directory, "decoder_model.onnx"));
            Assert.Equal(4 + virtualTokens, report.EncoderOutputShape[1]);
        }
    }

    [Theory]
    [InlineData("llama", "prefix")]
    [InlineData("t5", "p_tuning_mlp")]
    public async Task Concurrent_generations_on_a_baked_export_equal_sequential(string arch, string method)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        var prompt = GenInput(arch);
        var prompts = Enumerable.Range(0, 8).Select(i => prompt.Skip(i % 3).ToArray()).ToArray();
        var sequential = prompts.Select(p => model.Generate(GenerationRequest.FromIds(p, GenerationOptions.Greedy(6))).Sequences[0]).ToArray();
        var concurrent = await Task.WhenAll(prompts.Select(p => Task.Run(() => model.Generate(GenerationRequest.FromIds(p, GenerationOptions.Greedy(6))))));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(sequential[i], concurrent[i].Sequences[0]);
    }
}
