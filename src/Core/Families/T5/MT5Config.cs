using System.Text.Json.Serialization;

namespace Peft.Onnx.Core.Families;

/// <summary>transformers' MT5Config (model_type "mt5"): gated-gelu and an untied head by default.</summary>
public sealed record MT5Config : T5Config
{
    public MT5Config()
    {
        VocabSize = 250112;
        DFf = 1024;
        NumLayers = 8;
        NumHeads = 6;
        FeedForwardProj = "gated-gelu";
        DecoderStartTokenId = 0;
    }

    [JsonIgnore] public override ModelFamily Family => T5Family.MT5;
    public override bool TiesWordEmbeddings => TieWordEmbeddings ?? false;
}
