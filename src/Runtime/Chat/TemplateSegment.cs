namespace Peft.Onnx.Runtime.Chat;

/// <summary>A piece of a template: literal text, an {{ expression }} or a {% statement %} (its inner text).</summary>
internal readonly record struct TemplateSegment(TemplateSegmentKind Kind, string Text);

internal enum TemplateSegmentKind { Text, Output, Statement }
