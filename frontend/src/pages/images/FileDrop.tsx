import { useEffect, useId, useRef, useState, type DragEvent } from 'react';
import { Group, Stack, Text } from '@mantine/core';

interface FileDropProps {
  /** The accessible name of the file input, e.g. "Choose a CSV file". */
  label: string;
  /** What the area accepts, said in words, e.g. "One CSV file, up to 10 MB". */
  hint: string;
  accept: string;
  multiple?: boolean;
  disabled?: boolean;
  error?: string | null;
  onFiles: (files: File[]) => void;
}

function hasFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer.types).includes('Files');
}

/**
 * A drop area around a real file input: drag files onto it, or use the input (reached with Tab,
 * opened with Enter or Space, or by clicking the "Choose" label), so it works without a mouse.
 */
export function FileDrop({ label, hint, accept, multiple = false, disabled, error, onFiles }: FileDropProps) {
  const id = useId();
  const [dragging, setDragging] = useState(false);
  const depth = useRef(0);

  // A file dropped just outside the area would otherwise open in the tab and lose the form.
  useEffect(() => {
    const keepFiles = (event: globalThis.DragEvent) => {
      if (event.dataTransfer && Array.from(event.dataTransfer.types).includes('Files')) {
        event.preventDefault();
      }
    };
    window.addEventListener('dragover', keepFiles);
    window.addEventListener('drop', keepFiles);
    return () => {
      window.removeEventListener('dragover', keepFiles);
      window.removeEventListener('drop', keepFiles);
    };
  }, []);

  const take = (list: FileList | null) => {
    const files = Array.from(list ?? []);
    if (files.length > 0) onFiles(multiple ? files : files.slice(0, 1));
  };

  return (
    <Stack gap={4}>
      <div
        className="file-drop"
        data-dragging={dragging || undefined}
        data-disabled={disabled || undefined}
        data-invalid={error ? true : undefined}
        data-testid="file-drop"
        onDragEnter={(event) => {
          if (disabled || !hasFiles(event)) return;
          event.preventDefault();
          depth.current++;
          setDragging(true);
        }}
        onDragOver={(event) => {
          if (disabled || !hasFiles(event)) return;
          event.preventDefault();
          event.dataTransfer.dropEffect = 'copy';
        }}
        onDragLeave={() => {
          depth.current = Math.max(0, depth.current - 1);
          if (depth.current === 0) setDragging(false);
        }}
        onDrop={(event) => {
          event.preventDefault();
          depth.current = 0;
          setDragging(false);
          if (!disabled) take(event.dataTransfer.files);
        }}
      >
        <input
          id={id}
          type="file"
          className="visually-hidden"
          accept={accept}
          multiple={multiple}
          disabled={disabled}
          aria-describedby={`${id}-hint${error ? ` ${id}-error` : ''}`}
          aria-invalid={error ? true : undefined}
          onChange={(event) => {
            take(event.currentTarget.files);
            // Picking the same file again after an error must fire `change` again.
            event.currentTarget.value = '';
          }}
        />
        <Stack align="center" gap={6}>
          <Text fw={500}>
            {dragging ? 'Drop to add' : `Drag and drop ${multiple ? 'files' : 'a file'} here, or`}
          </Text>
          <Group gap="xs">
            <label htmlFor={id} className="file-drop-button">
              {label}
            </label>
          </Group>
          <Text size="sm" c="dimmed" id={`${id}-hint`}>
            {hint}
          </Text>
        </Stack>
      </div>
      {error ? (
        <Text size="sm" c="red" id={`${id}-error`}>
          {error}
        </Text>
      ) : null}
    </Stack>
  );
}
