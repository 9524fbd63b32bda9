using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Lora;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>LoRA against PEFT 0.7.1: forward, merge, generation and the saved files of every reference case.</summary>
public class LoraTunerTests
{
    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var arch in Paths.Archs)
                foreach (var method in new[] { "lora", "lora_all" })
                    data.Add(arch, method);
            return data;
        }
    }

    /// <summary>One load per case: names, saved files, forward, generation, merge / unmerge, merge_and_unload.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void Adapter_matches_peft(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method);
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsType<LoraTuner>(model.Tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        // merge_adapter then unmerge_adapter gives back the adapted model.
        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged.Logits, $"{arch}/{method}");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        fixture.AssertMatches(fixture.Forward(merged), "logits_merged", "loss_merged");
        fixture.AssertGenerates(merged, "generated_merged");
        fixture.AssertMergedWeightsMatch(merged);
        Assert.Throws<InvalidOperationException>(() => tuner.AdapterStateDict());
    }

    [Theory, MemberData(nameof(Cases))]
    public void First_step_gradients_match_peft(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method);
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        fixture.AssertFirstStepGradients(model);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method);
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }

    [Fact]
    public void A_new_adapter_starts_as_the_base_model()
    {
        using var fixture = new TunerFixture("gpt2", "lora");
        using var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case("gpt2"), "base_reference.safetensors"));
        var config = (LoraConfig)AdapterConfig.Load(fixture.AdapterDir);
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 0);
        var layer = ((LoraTuner)model.Tuner).Layers[0];
        Assert.Equal(0f, layer.B.abs().max().item<float>());
        // kaiming_uniform_(a = sqrt(5)) on [r, in] draws from U(-1/sqrt(in), 1/sqrt(in)).
        Assert.True(layer.A.abs().max().item<float>() <= 1 / Math.Sqrt(64) + 1e-6);
        var logits = fixture.Forward(model).Logits.contiguous().data<float>().ToArray();
        Tolerance.AssertLogits(reference.ReadFloat32("logits"), logits, 1000, Tolerance.RowsFromMask(fixture.Inputs.Inputs.ReadInt64("attention_mask")), "fresh LoRA");
    }

    [Fact]
    public void Init_lora_weights_gaussian_and_false_initialise_as_peft()
    {
        using var baseModel = ModelLoader.Load(Paths.Case("gpt2", "base_model"));
        var gaussian = new LoraConfig { R = 4, TargetModules = TargetModules.FromNames(["c_attn"]), InitLoraWeights = InitLoraWeights.Gaussian };
        using (var tuner = new LoraTuner(baseModel, gaussian))
        {
            var a = tuner.Layers[0].A;
            Assert.Equal(0f, tuner.Layers[0].B.abs().max().item<float>());
            Assert.InRange(a.std().item<float>(), 0.2, 0.3); // N(0, 1/r) with r = 4
        }
        var random = gaussian with { InitLoraWeights = InitLoraWeights.Random };
        using (var tuner = new LoraTuner(baseModel, random))
        {
            // Both keep nn.Linear's init: B is U(-1/sqrt(r), 1/sqrt(r)), not zero.
            var b = tuner.Layers[0].B;
            Assert.True(b.abs().max().item<float>() > 0.1);
            Assert.True(b.abs().max().item<float>() <= 0.5 + 1e-6);
        }
        Assert.Empty(baseModel.Linears.Adapters);
    }

    [Fact]
    public void Rslora_and_layers_to_transform_wrap_the_right_modules_and_merge_exactly()
    {
        using var fixture = new TunerFixture("llama", "lora");
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, UseRslora = true, InitLoraWeights = InitLoraWeights.Random,
            TargetModules = TargetModules.FromNames(["q_proj", "v_proj", "down_proj"]),
            LayersToTransform = new OneOrMany<int>(1),
        };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config, seed: 3);
        var tuner = (LoraTuner)model.Tuner;
        Assert.Equal(["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.down_proj"], tuner.Layers.Select(l => l.Path));
        Assert.All(tuner.Layers, l => Assert.Equal(8 / Math.Sqrt(4), l.Scaling, 12));
        var unmerged = fixture.Forward(model).Logits;
        using var scope = NewDisposeScope();
        var merged = tuner.MergeAndUnload();
        TunerFixture.AssertSameLogits(unmerged, fixture.Forward(merged).Logits, "rsLoRA merged");
    }

    [Fact]
    public void Rank_and_alpha_patterns_give_each_module_its_own_shape_and_scaling()
    {
        using var baseModel = ModelLoader.Load(Paths.Case("opt", "base_model"));
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]),
            RankPattern = new() { ["q_proj"] = 2 }, AlphaPattern = new() { ["v_proj"] = 32 },
        };
        using var tuner = new LoraTuner(baseModel, config);
        var q = tuner.Layers.First(l => l.Path.EndsWith("q_proj", StringComparison.Ordinal));
        var v = tuner.Layers.First(l => l.Path.EndsWith("v_proj", StringComparison.Ordinal));
        Assert.Equal([2L, 64], q.A.shape);
        Assert.Equal([64L, 2], q.B.shape);
        Assert.Equal(8.0 / 2, q.Scaling);
        Assert.Equal([4L, 64], v.A.shape);
        Assert.Equal(32.0 / 4, v.Scaling);
    }

    [Fact]
    public void A_seeded_adapter_is_reproducible_and_round_trips_through_its_files()
    {
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 16, UseRslora = true, InitLoraWeights = InitLoraWeights.Random,
            TargetModules = TargetModules.FromNames(["c_attn", "c_fc"]), LayersToTransform = new OneOrMany<int>([0]),
        };
        using var first = PeftModel.Create(ModelLoader.Load(Paths.Case("gpt2", "base_model")), config, seed: 5);
        using var second = PeftModel.Create(ModelLoader.Load(Paths.Case("gpt2", "base_model")), config, seed: 5);
        Assert.All(first.Tuner.TrainableParameters.Zip(second.Tuner.TrainableParameters),
            p => Assert.True(p.First.Parameter.allclose(p.Second.Parameter, 0, 0), p.First.Name));
        var dir = Paths.TempDir();
        try
        {
            first.Save(dir);
            using var reloaded = PeftModel.Load(Paths.Case("gpt2", "base_model"), dir);
            var loaded = Assert.IsType<LoraConfig>(reloaded.Config);
            Assert.True(loaded.UseRslora);
            Assert.Equal(["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc"], ((LoraTuner)reloaded.Tuner).Layers.Select(l => l.Path));
            Assert.All(first.Tuner.TrainableParameters.Zip(reloaded.Tuner.TrainableParameters),
                p => Assert.True(p.First.Parameter.allclose(p.Second.Parameter, 0, 0), p.First.Name));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Dropout_is_active_only_while_training()
    {
        using var baseModel = ModelLoader.Load(Paths.Case("opt", "base_model"));
        var config = new LoraConfig { R = 4, LoraDropout = 0.5, TargetModules = TargetModules.FromNames(["q_proj"]), InitLoraWeights = InitLoraWeights.Random };
        using var tuner = new LoraTuner(baseModel, config);
        var layer = tuner.Layers[0];
        var linear = baseModel.Linears[layer.Path];
        using var scope = NewDisposeScope();
        var x = randn(3, 64);
        var eval1 = layer.Forward(linear, x);
        var eval2 = layer.Forward(linear, x);
        Assert.True(eval1.allclose(eval2, 0, 0));
        var expected = linear.BaseForward(x) + x.matmul(layer.A.t()).matmul(layer.B.t()) * layer.Scaling;
        Assert.True(eval1.allclose(expected, 1e-5, 1e-6));
        baseModel.Training = true;
        Assert.False(layer.Forward(linear, x).allclose(eval1, 1e-5, 1e-6));
        baseModel.Training = false;
    }

    [Fact]
    public void Modules_to_save_trains_a_copy_saved_under_the_module_name()
    {
        using var fixture = new TunerFixture("gpt2", "lora");
        var config = (LoraConfig)AdapterConfig.Load(fixture.AdapterDir) with { ModulesToSave = ["lm_head"] };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        var withHead = SaveWithHead(fixture.AdapterDir);
        try { model.LoadAdapter(withHead); }
        finally { Directory.Delete(withHead, true); }
        var tuner = (LoraTuner)model.Tuner;
        Assert.Contains(tuner.TrainableParameters, p => p.Name == "base_model.model.lm_head.modules_to_save.default.weight");
        var state = tuner.AdapterStateDict();
        Assert.Contains("base_model.model.lm_head.weight", state.Keys);
        // The copy is untied: changing it leaves the embeddings alone.
        using (no_grad()) model.Base.Parameters["lm_head.weight"].mul_(2);
        Assert.False(model.Base.Parameters["lm_head.weight"].allclose(model.Base.WordEmbeddings, 0, 0));
        var dir2 = Paths.TempDir();
        try
        {
            model.Save(dir2);
            using var reloaded = PeftModel.Load(fixture.BaseDir, dir2);
            Assert.True(reloaded.Base.Parameters["lm_head.weight"].allclose(model.Base.Parameters["lm_head.weight"], 0, 0));
            var merged = ((LoraTuner)reloaded.Tuner).MergeAndUnload();
            Assert.True(merged.Parameters["lm_head.weight"].allclose(model.Base.Parameters["lm_head.weight"], 0, 0));
        }
        finally { Directory.Delete(dir2, true); }
        foreach (var t in state.Values) t.Dispose();

        // The fixture adapter lacks the head: write one that has it (PEFT would save the untrained copy).
        static string SaveWithHead(string adapterDir)
        {
            var tmp = Paths.TempDir();
            using var source = SafeTensorsFile.Open(Path.Combine(adapterDir, AdapterFormat.WeightsFile));
            using var baseFile = SafeTensorsFile.Open(Path.Combine(Paths.Case("gpt2", "base_model"), "model.safetensors"));
            var tensors = source.Names.Select(n => TensorData.FromFloat32(n, source[n].Shape, source.ReadFloat32(n))).ToList();
            tensors.Add(TensorData.FromFloat32("base_model.model.lm_head.weight", baseFile["transformer.wte.weight"].Shape, baseFile.ReadFloat32("transformer.wte.weight")));
            SafeTensorsWriter.Write(Path.Combine(tmp, AdapterFormat.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            return tmp;
        }
    }

    [Fact]
    public void Bias_all_trains_and_saves_every_bias()
    {
        using var baseModel = ModelLoader.Load(Paths.Case("gpt2", "base_model"));
        var config = new LoraConfig { R = 4, Bias = "all", TargetModules = TargetModules.FromNames(["c_attn"]) };
        using var tuner = new LoraTuner(baseModel, config);
        var names = tuner.TrainableParameters.Select(p => p.Name).ToList();
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", names);
        Assert.Contains("base_model.model.transformer.h.0.mlp.c_fc.bias", names);
        Assert.Contains("base_model.model.transformer.ln_f.bias", names);
        var state = tuner.AdapterStateDict();
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", state.Keys);
        tuner.LoadAdapterStateDict(state, "adapter_model.safetensors");
        foreach (var t in state.Values) t.Dispose();
    }

    [Fact]
    public void An_adapter_with_another_rank_fails_naming_the_tensor_and_both_shapes()
    {
        using var fixture = new TunerFixture("gpt2", "lora");
        var config = (LoraConfig)AdapterConfig.Load(fixture.AdapterDir) with { R = 8 };
        using var model = PeftModel.Create(ModelLoader.Load(fixture.BaseDir), config);
        var error = Assert.Throws<PeftOnnxException>(() => model.LoadAdapter(fixture.AdapterDir));
        Assert.Contains("adapter_model.safetensors: tensor 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight' has shape [4, 64] but the base model needs [8, 64]", error.Message);
    }

    [Fact]
    public void An_adapter_for_another_base_fails()
    {
        // BLOOM's targets name no GPT-2 module.
        var error = Assert.Throws<PeftOnnxException>(() => PeftModel.Load(Paths.Case("gpt2", "base_model"), Path.Combine(Paths.Case("bloom", "lora"), "adapter")));
        Assert.Contains("query_key_value", error.Message);
        Assert.Contains("c_attn", error.Message);
        // T5's lora_all targets "wi", which mT5 splits into wi_0 / wi_1: the file holds tensors mT5 has no place for.
        var mismatch = Assert.Throws<PeftOnnxException>(() => PeftModel.Load(Paths.Case("mt5", "base_model"), Path.Combine(Paths.Case("t5", "lora_all"), "adapter")));
        Assert.Contains("unexpected", mismatch.Message);
        Assert.Contains("DenseReluDense.wi.lora_A.weight", mismatch.Message);
    }

    [Fact]
    public void Target_modules_matching_nothing_fails_naming_the_candidates()
    {
        using var baseModel = ModelLoader.Load(Paths.Case("gpt2", "base_model"));
        var config = new LoraConfig { TargetModules = TargetModules.FromNames(["q_proj"]) };
        var error = Assert.Throws<PeftOnnxException>(() => new LoraTuner(baseModel, config));
        Assert.Contains("q_proj", error.Message);
        Assert.Contains("c_attn", error.Message);
        Assert.Empty(baseModel.Linears.Adapters);
    }
}
