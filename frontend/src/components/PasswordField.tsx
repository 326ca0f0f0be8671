import { useId } from 'react';
import { PasswordInput, type PasswordInputProps } from '@mantine/core';

/**
 * Mantine's PasswordInput leaves aria-invalid / aria-describedby off its inner <input>; this
 * puts them back so an error or hint is read out with the field.
 */
export function PasswordField(props: PasswordInputProps & { autoFocus?: boolean }) {
  const generated = useId();
  const id = props.id ?? `pw-${generated.replace(/:/g, '')}`;
  const describedBy = [props.error ? `${id}-error` : null, props.description ? `${id}-description` : null]
    .filter(Boolean)
    .join(' ');
  return (
    <PasswordInput
      {...props}
      id={id}
      aria-invalid={props.error ? true : undefined}
      aria-describedby={describedBy || undefined}
    />
  );
}
